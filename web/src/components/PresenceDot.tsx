"use client";

import { presenceState } from "@/lib/presence";
import { useRooms } from "@/lib/rooms";

const COLOR = { online: "bg-green-500", away: "bg-amber-400", offline: "border border-slate-400 bg-transparent" };
const WORD = { online: "online", away: "away", offline: "offline" };

/** A small dot for a user's presence, with the word for screen readers. */
export function PresenceDot({ userId }: { userId: string }) {
  const state = presenceState(useRooms((s) => s.presence[userId]));
  return (
    <span data-testid="presence" data-user-id={userId} data-presence={state} role="img" aria-label={WORD[state]}
      title={WORD[state]} className={`inline-block h-2 w-2 shrink-0 rounded-full ${COLOR[state]}`} />
  );
}
