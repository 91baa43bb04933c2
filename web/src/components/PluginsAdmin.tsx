"use client";

import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { adminPlugins, installPlugin, roomPlugins, setPluginEnabled, setRoomPlugin } from "@/lib/plugins";

/** The server admins' plugins page: what is installed, running, and on or off. Shown only to
 * server admins (the admin API answers everyone else with 403). */
export function PluginsAdmin({ client }: { client: MatrixClient }) {
  const qc = useQueryClient();
  const key = ["admin-plugins", client.userId];
  const list = useQuery({ queryKey: key, queryFn: () => adminPlugins(client), staleTime: 0,
    // Follow the plugins' processes while an admin looks; nobody else is asked twice.
    refetchInterval: (q) => (q.state.data ? 5_000 : false) });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  if (list.data === null || (list.isLoading && !list.data)) return null;

  async function act(name: string, what: () => Promise<void>) {
    setBusy(name);
    setError(null);
    try {
      await what();
    } catch (e) {
      setError(describeError(e));
    } finally {
      await qc.invalidateQueries({ queryKey: key });
      setBusy(null);
    }
  }

  return (
    <section aria-label="Plugins" className="space-y-2 border-b border-slate-200 pb-4 dark:border-slate-700">
      <h3 className="font-semibold">Plugins <span className="text-xs font-normal text-slate-500">(server admin)</span></h3>
      {list.error && <p role="alert" className="text-sm text-red-700">{describeError(list.error)}</p>}
      {list.data?.length === 0 && <p className="text-sm text-slate-500">No plugins are installed or found on the server.</p>}
      <ul className="space-y-2">
        {list.data?.map((p) => (
          <li key={p.name} data-testid="plugin" data-plugin={p.name} aria-label={`Plugin ${p.name}`}
            className="flex flex-wrap items-center gap-2 rounded border border-slate-200 p-2 text-sm dark:border-slate-700">
            <span className="font-semibold">{p.name}</span>
            {p.version && <span className="text-xs text-slate-500">{p.version}</span>}
            {p.commands && p.commands.length > 0 && <span className="text-xs text-slate-500">{p.commands.map((c) => `/${c}`).join(" ")}</span>}
            <span className="text-xs text-slate-500" data-testid="plugin-state">
              {!p.installed ? "not installed" : !p.enabled ? "disabled" : (p.process?.state ?? "enabled")}
            </span>
            <span className="ml-auto flex gap-2">
              {!p.installed ? (
                <button type="button" disabled={busy === p.name} className="text-xs underline"
                  onClick={() => void act(p.name, () => installPlugin(client, p.name))}>Install</button>
              ) : (
                <button type="button" disabled={busy === p.name} className="text-xs underline" aria-pressed={p.enabled}
                  onClick={() => void act(p.name, () => setPluginEnabled(client, p.name, !p.enabled))}>
                  {p.enabled ? `Disable ${p.name}` : `Enable ${p.name}`}
                </button>
              )}
            </span>
          </li>
        ))}
      </ul>
      {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
    </section>
  );
}

/** The plugins enabled on the server, turned on or off in one channel by its admins. */
export function RoomPlugins({ client, roomId }: { client: MatrixClient; roomId: string }) {
  const qc = useQueryClient();
  const key = ["room-plugins", roomId];
  const list = useQuery({ queryKey: key, queryFn: () => roomPlugins(client, roomId), staleTime: 0 });
  const [error, setError] = useState<string | null>(null);
  const [chosen, setChosen] = useState<Record<string, boolean>>({});
  if (!list.data || list.data.length === 0) return null;
  return (
    <fieldset className="space-y-1 text-sm">
      <legend className="font-semibold">Plugins in this channel</legend>
      {list.data.map((p) => (
        <label key={p.plugin} className="flex items-center gap-2">
          <input type="checkbox" checked={chosen[p.plugin] ?? p.enabled} onChange={(e) => {
            const on = e.target.checked;
            setError(null);
            setChosen((c) => ({ ...c, [p.plugin]: on }));
            setRoomPlugin(client, roomId, p.plugin, on)
              .catch((err) => setError(describeError(err)))
              .finally(async () => {
                await qc.invalidateQueries({ queryKey: key });
                void qc.invalidateQueries({ queryKey: ["commands", roomId] });
                setChosen(({ [p.plugin]: _, ...rest }) => rest);
              });
          }} />
          {p.plugin}
        </label>
      ))}
      {error && <p role="alert" className="text-red-700">{error}</p>}
    </fieldset>
  );
}
