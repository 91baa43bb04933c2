"use client";

import type { ReactNode } from "react";

export interface Suggestion {
  key: string;
  label: ReactNode;
  detail?: string;
}

/** The composer's autocomplete list (commands after "/", people after "@"): the textarea keeps
 * focus and drives it with the arrow keys, Enter or Tab picks, Escape closes. */
export function Suggestions({ id, title, items, active, onPick, onHover }: {
  id: string; title: string; items: Suggestion[]; active: number;
  onPick: (i: number) => void; onHover: (i: number) => void;
}) {
  if (items.length === 0) return null;
  return (
    <ul id={id} role="listbox" aria-label={title} data-testid="suggestions"
      className="mb-1 max-h-60 overflow-y-auto rounded-lg border border-slate-200 bg-white py-1 text-sm shadow-lg dark:border-slate-600 dark:bg-slate-800">
      {items.map((s, i) => (
        <li key={s.key} id={`${id}-${i}`} role="option" aria-selected={i === active} data-testid="suggestion"
          onMouseDown={(e) => { e.preventDefault(); onPick(i); }} onMouseEnter={() => onHover(i)}
          className={`flex cursor-pointer items-center gap-2 px-3 py-1 ${i === active ? "bg-indigo-100 dark:bg-indigo-900" : ""}`}>
          {s.label}
          {s.detail && <span className="truncate text-xs text-slate-500">{s.detail}</span>}
        </li>
      ))}
    </ul>
  );
}
