"use client";

import type { MatrixClient } from "@/lib/api";
import { Dialog } from "./Dialog";
import { RoomNotifications } from "./NotificationSettings";
import { RoomPlugins } from "./PluginsAdmin";

/** A channel's own settings: how it notifies, and which plugins work in it. */
export function ChannelSettingsDialog({ client, roomId, label, onClose }: {
  client: MatrixClient; roomId: string; label: string; onClose: () => void;
}) {
  return (
    <Dialog title={`${label}: notifications and plugins`} onClose={onClose}>
      <div className="space-y-4">
        <RoomNotifications client={client} roomId={roomId} />
        <RoomPlugins client={client} roomId={roomId} />
      </div>
    </Dialog>
  );
}
