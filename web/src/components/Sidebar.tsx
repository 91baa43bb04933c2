"use client";

import { useEffect, useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { acceptInvite, leaveRoom } from "@/lib/actions";
import { openRoom } from "@/lib/navigation";
import { roomLevel } from "@/lib/notifications";
import { announceOnline, PRESENCE_REFRESH_MS } from "@/lib/presence";
import { roomName, useRooms } from "@/lib/rooms";
import type { RoomData } from "@/lib/types";
import { useUi } from "@/lib/ui";
import { ChannelSettingsDialog } from "./ChannelSettingsDialog";
import { useRuleset } from "./NotificationSettings";
import { PresenceDot } from "./PresenceDot";

function Badge({ room }: { room: RoomData }) {
  if (room.notificationCount <= 0) return null;
  const label = `${room.notificationCount} unread`;
  return (
    <span aria-label={label} data-testid="unread-badge" data-highlight={room.highlightCount > 0 ? "true" : "false"}
      className={`ml-auto rounded-full px-2 text-xs font-bold text-white ${room.highlightCount > 0 ? "bg-red-600" : "bg-indigo-500"}`}>
      {room.notificationCount}
    </span>
  );
}

export function Sidebar({ client, onCreate, onBrowse, onDirect, onLogout, onSettings, onCreateOrg }: {
  client: MatrixClient; onCreate: () => void; onBrowse: () => void; onDirect: () => void; onLogout: () => void;
  onSettings: () => void; onCreateOrg: () => void;
}) {
  const org = useUi((s) => s.org);
  const setOrg = useUi((s) => s.setOrg);
  const rooms = useRooms((s) => s.rooms);
  const direct = useRooms((s) => s.direct);
  const selected = useRooms((s) => s.selected);
  const [error, setError] = useState<string | null>(null);
  const [channelSettings, setChannelSettings] = useState<{ roomId: string; label: string } | null>(null);
  const rules = useRuleset(client);
  const me = client.userId;

  // While the app is open the person is online (WebSocket sync alone does not say so).
  useEffect(() => {
    const say = () => { announceOnline(client).catch(() => undefined); };
    say();
    const timer = setInterval(say, PRESENCE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [client]);

  const all = Object.values(rooms);
  const joined = all.filter((r) => r.membership === "join" && r.roomType !== "m.space");
  const invites = all.filter((r) => r.membership === "invite");
  const byName = (a: RoomData, b: RoomData) => roomName(a, me, direct[a.roomId]).localeCompare(roomName(b, me, direct[b.roomId]));
  const spaces = all.filter((r) => r.membership === "join" && r.roomType === "m.space").sort(byName);
  const current = org ? rooms[org] : undefined;
  const inOrg = current ? new Set(current.children ?? []) : null;
  const channels = joined.filter((r) => !direct[r.roomId] && (!inOrg || inOrg.has(r.roomId))).sort(byName);
  const dms = joined.filter((r) => direct[r.roomId]).sort(byName);

  function item(r: RoomData, prefix: string) {
    const name = roomName(r, me, direct[r.roomId]);
    const active = r.roomId === selected;
    const unread = r.notificationCount > 0;
    const other = direct[r.roomId];
    const muted = rules.data ? roomLevel(rules.data, r.roomId) === "mute" : false;
    const label = `${other ? "" : "#"}${name}`;
    return (
      <li key={r.roomId} className="group relative">
        <button type="button" onClick={() => openRoom(r.roomId)} aria-current={active ? "page" : undefined}
          data-testid="room-link" data-room-id={r.roomId} data-muted={muted || undefined}
          className={`flex w-full items-center gap-1 rounded py-1 pl-2 pr-7 text-left ${active ? "bg-indigo-600 text-white" : "text-slate-300 hover:bg-slate-700"} ${unread && !active ? "font-bold text-white" : ""} ${muted && !active ? "opacity-60" : ""}`}>
          {other ? <PresenceDot userId={other} /> : <span aria-hidden="true" className="opacity-70">{prefix}</span>}
          <span className="truncate">{name}</span>
          {muted && <span className="text-xs" aria-label="muted" title="Muted">🔕</span>}
          <Badge room={r} />
        </button>
        <button type="button" aria-label={`Notifications and plugins for ${label}`} onClick={() => setChannelSettings({ roomId: r.roomId, label })}
          className="absolute right-1 top-1 rounded px-1 text-xs text-slate-300 opacity-0 hover:bg-slate-600 focus:opacity-100 group-hover:opacity-100">⋯</button>
      </li>
    );
  }

  async function accept(roomId: string) {
    setError(null);
    try {
      await acceptInvite(client, roomId);
      openRoom(roomId);
    } catch (e) {
      setError(describeError(e));
    }
  }

  async function decline(roomId: string) {
    try {
      await leaveRoom(client, roomId);
    } catch (e) {
      setError(describeError(e));
    }
  }

  return (
    <>
    <nav aria-label="Channels"
      className={`${selected ? "hidden md:flex" : "flex"} w-full shrink-0 flex-col bg-slate-800 text-slate-200 md:w-64`}>
      <div className="flex items-center justify-between border-b border-slate-700 px-3 py-3">
        <div className="min-w-0">
          <div className="font-bold text-white">Parley</div>
          <div className="truncate text-xs text-slate-400" data-testid="me">{me}</div>
        </div>
        <div className="flex shrink-0 gap-1">
          <button type="button" onClick={onSettings} className="rounded px-2 py-1 text-xs text-slate-300 hover:bg-slate-700">Settings</button>
          <button type="button" onClick={onLogout} className="rounded px-2 py-1 text-xs text-slate-300 hover:bg-slate-700">Log out</button>
        </div>
      </div>
      <div className="flex-1 overflow-y-auto px-2 py-3 text-sm">
        {invites.length > 0 && (
          <section className="mb-4">
            <h2 className="px-2 text-xs font-semibold uppercase text-slate-400">Invites</h2>
            <ul>
              {invites.map((r) => (
                <li key={r.roomId} className="px-2 py-1" data-testid="invite">
                  <div className="truncate" data-testid="invite-name">
                    {r.directInvite && r.inviter && !r.name ? `Direct message from ${r.inviter}` : roomName(r, me)}
                  </div>
                  <div className="flex gap-2 text-xs">
                    <button type="button" className="text-indigo-300 underline" onClick={() => void accept(r.roomId)}>Join</button>
                    <button type="button" className="text-slate-400 underline" onClick={() => void decline(r.roomId)}>Decline</button>
                  </div>
                </li>
              ))}
            </ul>
          </section>
        )}
        <section className="mb-4" aria-label="Organizations">
          <div className="flex items-center justify-between px-2">
            <h2 className="text-xs font-semibold uppercase text-slate-400">Organizations</h2>
            <button type="button" onClick={onCreateOrg} aria-label="Create an organization" className="rounded px-1 text-lg leading-none text-slate-300 hover:bg-slate-700">+</button>
          </div>
          <ul data-testid="org-list">
            {[{ roomId: null as string | null, label: "All channels" }, ...spaces.map((s) => ({ roomId: s.roomId as string | null, label: roomName(s, me) }))].map((o) => (
              <li key={o.roomId ?? "all"}>
                <button type="button" data-testid="org" aria-pressed={org === o.roomId} onClick={() => setOrg(o.roomId)}
                  className={`w-full truncate rounded px-2 py-1 text-left ${org === o.roomId ? "bg-slate-600 text-white" : "text-slate-300 hover:bg-slate-700"}`}>
                  {o.label}
                </button>
              </li>
            ))}
          </ul>
        </section>
        <section className="mb-4">
          <div className="flex items-center justify-between px-2">
            <h2 className="text-xs font-semibold uppercase text-slate-400">{current ? `Channels in ${roomName(current, me)}` : "Channels"}</h2>
            <button type="button" onClick={onCreate} aria-label="Create a channel" className="rounded px-1 text-lg leading-none text-slate-300 hover:bg-slate-700">+</button>
          </div>
          <ul data-testid="channel-list">{channels.map((r) => item(r, "#"))}</ul>
          <button type="button" onClick={onBrowse} className="mt-1 px-2 text-slate-400 hover:text-white">Browse channels</button>
        </section>
        <section>
          <div className="flex items-center justify-between px-2">
            <h2 className="text-xs font-semibold uppercase text-slate-400">Direct messages</h2>
            <button type="button" onClick={onDirect} aria-label="Start a direct message" className="rounded px-1 text-lg leading-none text-slate-300 hover:bg-slate-700">+</button>
          </div>
          <ul data-testid="dm-list">{dms.map((r) => item(r, "@"))}</ul>
          {dms.length === 0 && <p className="px-2 text-xs text-slate-400">No direct messages yet.</p>}
        </section>
        {error && <p role="alert" className="mt-3 px-2 text-xs text-red-300">{error}</p>}
      </div>
    </nav>
    {channelSettings && (
      <ChannelSettingsDialog client={client} roomId={channelSettings.roomId} label={channelSettings.label}
        onClose={() => setChannelSettings(null)} />
    )}
    </>
  );
}
