// What the person has open besides the channel: the message being edited and the thread panel.
import { create } from "zustand";

interface UiState {
  /** Event ID of the own message being edited in place. */
  editing: string | null;
  /** Root event ID of the thread shown in the side panel. */
  thread: string | null;
  /** The organization (space) whose channels the sidebar shows; null for all. */
  org: string | null;
  setOrg: (org: string | null) => void;
  setEditing: (eventId: string | null) => void;
  openThread: (rootId: string | null) => void;
}

export const useUi = create<UiState>()((set) => ({
  editing: null,
  thread: null,
  org: null,
  setOrg: (org) => set({ org }),
  setEditing: (editing) => set({ editing }),
  openThread: (thread) => set({ thread }),
}));
