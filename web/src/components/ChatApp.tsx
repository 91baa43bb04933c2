"use client";

import { useEffect, useState } from "react";
import type { MatrixClient } from "@/lib/api";
import { logout } from "@/lib/actions";
import { startCrypto, stopCrypto } from "@/lib/crypto";
import { openRoom, roomFromHash } from "@/lib/navigation";
import { useRooms } from "@/lib/rooms";
import { useSession } from "@/lib/session";
import { useUi } from "@/lib/ui";
import { SyncEngine } from "@/lib/sync";
import { BrowseDialog } from "./BrowseDialog";
import { CreateChannelDialog } from "./CreateChannelDialog";
import { DirectDialog } from "./DirectDialog";
import { OrgDialog } from "./OrgDialog";
import { ShortcutsDialog } from "./ShortcutsDialog";
import { SettingsDialog } from "./SettingsDialog";
import { RoomView } from "./RoomView";
import { SearchPanel } from "./SearchPanel";
import { Sidebar } from "./Sidebar";

/** Open the channel before or after the current one, in the sidebar's order, ready to type. */
function stepRoom(step: number): void {
  const links = [...document.querySelectorAll<HTMLElement>("[data-testid=room-link]")];
  if (links.length === 0) return;
  const at = links.findIndex((l) => l.getAttribute("aria-current") === "page");
  const next = links[(at + step + links.length) % links.length];
  const id = next.dataset.roomId;
  if (!id) return;
  openRoom(id);
  requestAnimationFrame(() => document.querySelector<HTMLElement>("[data-testid=composer]")?.focus());
}

export function ChatApp({ client }: { client: MatrixClient }) {
  const selected = useRooms((s) => s.selected);
  const selectedRoom = useRooms((s) => (s.selected ? s.rooms[s.selected] : undefined));
  const status = useRooms((s) => s.status);
  const transport = useRooms((s) => s.transport);
  const initialSyncDone = useRooms((s) => s.initialSyncDone);
  const signOut = useSession((s) => s.signOut);
  const searching = useUi((s) => s.search !== null);
  const [dialog, setDialog] = useState<"create" | "browse" | "direct" | "settings" | "shortcuts" | "org" | null>(null);

  useEffect(() => {
    const prefer = window.localStorage.getItem("parley.transport") === "long-poll" ? "long-poll" : "websocket";
    const crypto = startCrypto(client);
    const engine = new SyncEngine(client, {
      onSync: (sync) => {
        // The machine sees the sync first (its room keys, then the timeline that needs them);
        // the sync is acknowledged once the machine has stored it.
        const stored = crypto.receiveSync(sync);
        useRooms.getState().applySync(sync, client.userId);
        return stored;
      },
      onStatus: (st, tr) => useRooms.getState().setStatus(st, tr),
      onLoggedOut: () => signOut("Your session has ended. Please log in again."),
    }, prefer);
    engine.start();
    useRooms.getState().select(roomFromHash());
    const onHash = () => useRooms.getState().select(roomFromHash());
    window.addEventListener("hashchange", onHash);
    const onKey = (e: KeyboardEvent) => {
      if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
        e.preventDefault();
        stepRoom(e.key === "ArrowUp" ? -1 : 1);
      } else if ((e.ctrlKey || e.metaKey) && e.key === "/") {
        e.preventDefault();
        setDialog("shortcuts");
      }
    };
    window.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("keydown", onKey);
      window.removeEventListener("hashchange", onHash);
      engine.stop();
      stopCrypto(crypto);
    };
  }, [client, signOut]);

  async function doLogout() {
    await logout(client);
    window.location.hash = "";
    signOut();
  }

  return (
    <div className="flex h-full">
      <Sidebar
        client={client}
        onCreate={() => setDialog("create")}
        onBrowse={() => setDialog("browse")}
        onDirect={() => setDialog("direct")}
        onLogout={() => void doLogout()}
        onSettings={() => setDialog("settings")}
        onCreateOrg={() => setDialog("org")}
      />
      {/* On a phone the sidebar and the open channel take turns on the screen. */}
      <main className={`${selected && !searching ? "flex" : "hidden md:flex"} min-w-0 flex-1 flex-col`}>
        {status === "reconnecting" && (
          <div role="status" className="bg-amber-100 px-4 py-1 text-sm text-amber-900">Reconnecting…</div>
        )}
        <span className="sr-only" data-testid="sync-status" data-status={status} data-transport={transport ?? ""}>{status}</span>
        {selected && selectedRoom?.membership === "join" ? (
          <RoomView key={selected} client={client} room={selectedRoom} />
        ) : (
          <div className="flex flex-1 items-center justify-center p-8 text-slate-500">
            {initialSyncDone ? "Pick a channel on the left, or create one." : "Loading your channels…"}
          </div>
        )}
      </main>
      {searching && <SearchPanel client={client} />}
      {dialog === "create" && <CreateChannelDialog client={client} onClose={() => setDialog(null)} />}
      {dialog === "browse" && <BrowseDialog client={client} onClose={() => setDialog(null)} />}
      {dialog === "direct" && <DirectDialog client={client} onClose={() => setDialog(null)} />}
      {dialog === "settings" && <SettingsDialog client={client} onClose={() => setDialog(null)} />}
      {dialog === "shortcuts" && <ShortcutsDialog onClose={() => setDialog(null)} />}
      {dialog === "org" && <OrgDialog client={client} onClose={() => setDialog(null)} />}
    </div>
  );
}
