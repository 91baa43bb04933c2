// What the person has open besides the channel: the message being edited, the thread panel, the
// search view, the AI drawer, and a message to bring into view.
import { create } from "zustand";

export interface SearchRequest {
  term: string;
  /** The channel searched; null for every channel. */
  roomId: string | null;
}

interface UiState {
  /** Event ID of the own message being edited in place. */
  editing: string | null;
  /** Root event ID of the thread shown in the side panel. */
  thread: string | null;
  /** The organization (space) whose channels the sidebar shows; null for all. */
  org: string | null;
  /** The search shown in the search view; null when it is closed. */
  search: SearchRequest | null;
  /** A message to scroll to and mark once its channel is open (a search result that was picked). */
  jump: { roomId: string; eventId: string } | null;
  /** The AI assistant drawer is open. */
  ai: boolean;
  /** Text to put in a channel's composer (a reply suggestion that was picked). */
  draft: { roomId: string; text: string } | null;
  setOrg: (org: string | null) => void;
  setEditing: (eventId: string | null) => void;
  openThread: (rootId: string | null) => void;
  setSearch: (search: SearchRequest | null) => void;
  setJump: (jump: { roomId: string; eventId: string } | null) => void;
  setAi: (open: boolean) => void;
  setDraft: (draft: { roomId: string; text: string } | null) => void;
}

export const useUi = create<UiState>()((set) => ({
  editing: null,
  thread: null,
  org: null,
  search: null,
  jump: null,
  ai: false,
  draft: null,
  setOrg: (org) => set({ org }),
  setEditing: (editing) => set({ editing }),
  openThread: (thread) => set({ thread }),
  setSearch: (search) => set({ search }),
  setJump: (jump) => set({ jump }),
  setAi: (ai) => set({ ai }),
  setDraft: (draft) => set({ draft }),
}));
