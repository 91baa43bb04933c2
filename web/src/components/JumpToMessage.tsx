"use client";

import { useEffect } from "react";
import type { MatrixClient } from "@/lib/api";
import { ensureLoaded } from "@/lib/search";
import { useUi } from "@/lib/ui";

const FRAMES = 120;
const MARK = ["ring-2", "ring-amber-400", "bg-amber-50", "dark:bg-amber-950"];

/** Brings a picked search result into view in its channel: loads older history until the
 * message is there, scrolls it to the middle, marks it for a moment and gives it focus. */
export function JumpToMessage({ client, roomId }: { client: MatrixClient; roomId: string }) {
  const jump = useUi((s) => s.jump);
  useEffect(() => {
    if (!jump || jump.roomId !== roomId) return;
    let cancelled = false;
    let frame = 0;
    const find = () => document.querySelector<HTMLElement>(`[data-testid=message][data-event-id="${CSS.escape(jump.eventId)}"]`);
    const show = () => {
      if (cancelled) return;
      const el = find();
      if (!el) {
        if (++frame < FRAMES) requestAnimationFrame(show);
        else useUi.getState().setJump(null);
        return;
      }
      el.scrollIntoView({ block: "center" });
      el.classList.add(...MARK);
      el.dataset.jumped = "true";
      el.focus({ preventScroll: true });
      setTimeout(() => { el.classList.remove(...MARK); delete el.dataset.jumped; }, 4000);
      useUi.getState().setJump(null);
    };
    ensureLoaded(client, roomId, jump.eventId).then(() => requestAnimationFrame(show), () => useUi.getState().setJump(null));
    return () => { cancelled = true; };
  }, [client, roomId, jump]);
  return null;
}
