"use client";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useSession } from "@/lib/session";
import { applyTheme, loadTheme } from "@/lib/settings";
import { AuthScreen } from "./AuthScreen";
import { ChatApp } from "./ChatApp";

export function ClientRoot() {
  const [queryClient] = useState(() => new QueryClient({ defaultOptions: { queries: { retry: 1, staleTime: 10_000 } } }));
  const ready = useSession((s) => s.ready);
  const client = useSession((s) => s.client);
  const init = useSession((s) => s.init);

  useEffect(() => {
    applyTheme(loadTheme());
    void init();
  }, [init]);

  return (
    <QueryClientProvider client={queryClient}>
      {!ready ? (
        <div className="flex h-full items-center justify-center text-slate-500" role="status">Loading…</div>
      ) : client ? (
        <ChatApp key={client.session.deviceId} client={client} />
      ) : (
        <AuthScreen />
      )}
    </QueryClientProvider>
  );
}
