import type { NextConfig } from "next";

// A static export served by the homeserver itself: no Node server, no image optimizer,
// nothing fetched from the internet at build or run time.
const nextConfig: NextConfig = {
  output: "export",
  images: { unoptimized: true },
  poweredByHeader: false,
  reactStrictMode: true,
};

export default nextConfig;
