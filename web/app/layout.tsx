import type { Metadata, Viewport } from "next";
import "./globals.css";

export const metadata: Metadata = {
  title: "Parley",
  description: "Parley: team chat on Matrix",
};

export const viewport: Viewport = { width: "device-width", initialScale: 1 };

export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body className="h-full bg-white text-slate-900 antialiased dark:bg-slate-900 dark:text-slate-100">{children}</body>
    </html>
  );
}
