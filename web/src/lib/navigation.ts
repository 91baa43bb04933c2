import { useRooms } from "./rooms";

/** Show a room and remember it in the address, so a reload comes back to it. */
export function openRoom(roomId: string): void {
  window.location.hash = `#/room/${encodeURIComponent(roomId)}`;
  useRooms.getState().select(roomId);
}

export function roomFromHash(): string | null {
  const m = /^#\/room\/(.+)$/.exec(window.location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}
