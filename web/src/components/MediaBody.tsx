"use client";

import { useEffect, useState } from "react";
import { encryptedFileOf } from "@/lib/cryptoAttachments";
import { decryptedBlobUrl, mediaBlobUrl, mediaPath } from "@/lib/media";
import { useSession } from "@/lib/session";

function sizeLabel(n: unknown): string {
  if (typeof n !== "number" || !Number.isFinite(n)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** An image, a file or another attachment (m.image, m.file, m.video, m.audio) with an mxc:// URL. */
export function MediaBody({ content }: { content: Record<string, unknown> }) {
  const client = useSession((s) => s.client);
  const sealed = encryptedFileOf(content); // an attachment of an encrypted room
  const url = sealed ? sealed.url : typeof content.url === "string" ? content.url : "";
  const name = typeof content.filename === "string" ? content.filename : typeof content.body === "string" ? content.body : "file";
  const info = (content.info ?? {}) as Record<string, unknown>;
  const isImage = content.msgtype === "m.image";
  const mimetype = typeof info.mimetype === "string" ? info.mimetype : "application/octet-stream";
  const [src, setSrc] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    if (!client || !isImage) return;
    let live = true;
    if (sealed) {
      decryptedBlobUrl(client, sealed, mimetype).then((u) => { if (live) setSrc(u); }, () => { if (live) setFailed(true); });
      return () => { live = false; };
    }
    const thumb = mediaPath(url, { width: 800, height: 600 });
    const full = mediaPath(url);
    if (!thumb || !full) {
      setFailed(true);
      return;
    }
    // The server's thumbnail when it can make one (smaller), else the original.
    mediaBlobUrl(client, thumb).catch(() => mediaBlobUrl(client, full)).then(
      (u) => { if (live) setSrc(u); },
      () => { if (live) setFailed(true); });
    return () => { live = false; };
  }, [client, url, isImage, sealed, mimetype]);

  async function download() {
    const path = mediaPath(url);
    if (!client || !path) return;
    try {
      const href = sealed ? await decryptedBlobUrl(client, sealed, mimetype) : await mediaBlobUrl(client, path);
      const a = document.createElement("a");
      a.href = href;
      a.download = name;
      a.click();
    } catch {
      setFailed(true);
    }
  }

  const w = typeof info.w === "number" ? info.w : undefined;
  const h = typeof info.h === "number" ? info.h : undefined;
  if (isImage && !failed) {
    return (
      <figure data-testid="image" className="mt-1">
        {src ? (
          // eslint-disable-next-line @next/next/no-img-element -- a blob: URL of authenticated media
          <img src={src} alt={name} data-testid="image-preview" width={w} height={h}
            className="max-h-72 w-auto max-w-full rounded border border-slate-200 object-contain dark:border-slate-700" />
        ) : (
          <div className="flex h-24 w-40 items-center justify-center rounded bg-slate-100 text-xs text-slate-500 dark:bg-slate-800" role="status">Loading image…</div>
        )}
        <figcaption className="text-xs text-slate-500"><button type="button" onClick={() => void download()} className="underline" aria-label={`Download ${name}`}>{name}</button></figcaption>
      </figure>
    );
  }
  return (
    <div data-testid="file" className="mt-1 inline-flex items-center gap-2 rounded border border-slate-200 px-3 py-2 dark:border-slate-700">
      <span aria-hidden="true">📎</span>
      <button type="button" onClick={() => void download()} className="font-medium text-indigo-700 underline dark:text-indigo-300" aria-label={`Download ${name}`}>
        <span data-testid="file-name">{name}</span>
      </button>
      <span className="text-xs text-slate-500">{sizeLabel(info.size)}</span>
      {failed && <span role="alert" className="text-xs text-red-600">Could not load the file.</span>}
    </div>
  );
}
