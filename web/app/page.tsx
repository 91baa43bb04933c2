import { ClientRoot } from "@/components/ClientRoot";

export default function Page() {
  return <ClientRoot />;
}
