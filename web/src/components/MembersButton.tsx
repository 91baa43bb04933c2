"use client";

import { useEffect, useRef, useState } from "react";
import { memberName } from "@/lib/rooms";
import type { RoomData } from "@/lib/types";
import { PresenceDot } from "./PresenceDot";

/** The channel's member count; opens the list of members with their presence. */
export function MembersButton({ room }: { room: RoomData }) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  const joined = Object.keys(room.members).filter((u) => room.members[u].membership === "join")
    .sort((a, b) => memberName(room, a).localeCompare(memberName(room, b)));

  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => { if (!ref.current?.contains(e.target as Node)) setOpen(false); };
    const onKey = (e: KeyboardEvent) => { if (e.key === "Escape") setOpen(false); };
    window.addEventListener("mousedown", onDown);
    window.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("mousedown", onDown);
      window.removeEventListener("keydown", onKey);
    };
  }, [open]);

  return (
    <div ref={ref} className="relative ml-auto hidden shrink-0 sm:block">
      <button type="button" aria-expanded={open} onClick={() => setOpen((o) => !o)}
        className="rounded px-2 py-1 text-xs text-slate-500 hover:bg-slate-100 dark:hover:bg-slate-700">
        {joined.length} {joined.length === 1 ? "member" : "members"}
      </button>
      {open && (
        <ul aria-label="Members" data-testid="member-list"
          className="absolute right-0 z-20 mt-1 max-h-80 w-64 overflow-y-auto rounded-lg border border-slate-200 bg-white py-1 text-sm shadow-lg dark:border-slate-600 dark:bg-slate-800">
          {joined.map((u) => (
            <li key={u} data-testid="member" data-user-id={u} className="flex items-center gap-2 px-3 py-1">
              <PresenceDot userId={u} />
              <span className="truncate font-semibold">{memberName(room, u)}</span>
              <span className="truncate text-xs text-slate-500">{u}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
