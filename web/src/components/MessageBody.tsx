"use client";

import { useCrypto } from "@/lib/crypto";
import { encryptedFileOf } from "@/lib/cryptoAttachments";
import { linkify, sanitizeHtml } from "@/lib/markdown";
import { MediaBody } from "./MediaBody";
import type { MatrixEvent } from "@/lib/types";

function PlainText({ text }: { text: string }) {
  return (
    <>
      {linkify(text).map((part, i) =>
        "href" in part ? (
          <a key={i} href={part.href} target="_blank" rel="noopener noreferrer nofollow" className="text-indigo-700 underline">{part.href}</a>
        ) : (
          <span key={i}>{part.text}</span>
        ),
      )}
    </>
  );
}

/** An m.room.encrypted event not (yet) decrypted: waiting for the machine, or for its key. */
function Sealed({ ev }: { ev: MatrixEvent }) {
  const failed = useCrypto((s) => s.failed[ev.event_id]);
  const status = useCrypto((s) => s.status);
  if (failed !== undefined) {
    return (
      <p className="italic text-slate-500" data-testid="undecryptable" title={failed}>
        🔒 Unable to decrypt this message: its key has not reached this device (yet).
      </p>
    );
  }
  if (status === "unavailable" || status === "off") {
    return <p className="italic text-slate-500" data-testid="undecryptable">🔒 Encrypted message (this browser cannot decrypt it)</p>;
  }
  return <p className="italic text-slate-500" data-testid="decrypting">🔒 Decrypting…</p>;
}

/** A message's body; `content` replaces the event's own (the newest edit's m.new_content). */
export function MessageBody({ ev, content }: { ev: MatrixEvent; content?: Record<string, unknown> }) {
  const c = content ?? ev.content ?? {};
  if (ev.type === "m.room.encrypted") return <Sealed ev={ev} />;
  if (ev.unsigned?.redacted_because || Object.keys(ev.content ?? {}).length === 0) {
    return <p className="italic text-slate-500" data-testid="deleted">Message deleted</p>;
  }
  const body = typeof c.body === "string" ? c.body : "";
  if (["m.image", "m.file", "m.video", "m.audio"].includes(String(c.msgtype)) && (typeof c.url === "string" || encryptedFileOf(c))) {
    return <MediaBody content={c} />;
  }
  const emote = c.msgtype === "m.emote";
  if (c.format === "org.matrix.custom.html" && typeof c.formatted_body === "string") {
    const html = sanitizeHtml(c.formatted_body);
    if (html !== null) {
      // Safe by construction: the HTML has passed the allow-list sanitizer above.
      return <div className={`msg-html break-words ${emote ? "italic" : ""}`} data-testid="body" dangerouslySetInnerHTML={{ __html: html }} />;
    }
  }
  return (
    <p className={`whitespace-pre-wrap break-words ${emote ? "italic" : ""}`} data-testid="body">
      <PlainText text={body} />
    </p>
  );
}
