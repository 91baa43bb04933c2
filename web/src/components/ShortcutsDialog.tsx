"use client";

import { Dialog } from "./Dialog";

const SHORTCUTS: [string, string][] = [
  ["Enter", "Send the message"],
  ["Shift + Enter", "New line in the message"],
  ["↑ in an empty message box", "Edit your last message"],
  ["Escape", "Cancel an edit, close a thread or a dialog"],
  ["Alt + ↑ / Alt + ↓", "Previous or next channel"],
  ["Ctrl + /", "Show these shortcuts"],
  ["Tab / Shift + Tab", "Move between controls; a message's actions appear when it has focus"],
];

export function ShortcutsDialog({ onClose }: { onClose: () => void }) {
  return (
    <Dialog title="Keyboard shortcuts" onClose={onClose}>
      <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm">
        {SHORTCUTS.map(([keys, what]) => (
          <div key={keys} className="contents">
            <dt><kbd className="rounded border border-slate-300 px-1 font-mono text-xs dark:border-slate-600">{keys}</kbd></dt>
            <dd>{what}</dd>
          </div>
        ))}
      </dl>
    </Dialog>
  );
}
