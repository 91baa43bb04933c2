// Who is logged in: the session survives reloads in localStorage; refreshed tokens are saved
// as they arrive, and a refused refresh logs the person out.
import { create } from "zustand";
import { MatrixClient, type Session } from "./api";
import { discoverBaseUrl, loadSession, saveSession } from "./auth";
import { forgetCrypto } from "./crypto";
import { useRooms } from "./rooms";

interface SessionState {
  ready: boolean;
  baseUrl: string;
  client: MatrixClient | null;
  /** Why the person was logged out without asking, if they were. */
  notice: string | null;
  init: () => Promise<void>;
  signIn: (s: Session) => void;
  signOut: (notice?: string) => void;
}

function makeClient(s: Session): MatrixClient {
  return new MatrixClient(s, (next) => {
    if (next) saveSession(next);
    else useSession.getState().signOut("Your session has ended. Please log in again.");
  });
}

export const useSession = create<SessionState>()((set, get) => ({
  ready: false,
  baseUrl: "",
  client: null,
  notice: null,

  init: async () => {
    if (get().ready) return;
    const stored = loadSession();
    const baseUrl = stored?.baseUrl ?? (await discoverBaseUrl(window.location.origin));
    set({ ready: true, baseUrl, client: stored ? makeClient(stored) : null });
  },

  signIn: (s) => {
    saveSession(s);
    useRooms.getState().reset();
    set({ client: makeClient(s), notice: null });
  },

  signOut: (notice) => {
    saveSession(null);
    void forgetCrypto(); // this device's keys are of no use to anyone once it is logged out
    useRooms.getState().reset();
    set({ client: null, notice: notice ?? null });
  },
}));
