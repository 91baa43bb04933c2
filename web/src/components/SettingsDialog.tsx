"use client";

import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent, type ReactNode } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import {
  applyTheme, changePassword, deleteDevice, getAiServer, getDisplayName, listDevices, loadTheme, renameDevice,
  setAiServer, setDisplayName, type Device, type Theme,
} from "@/lib/settings";
import { Dialog } from "./Dialog";
import { AccountNotifications } from "./NotificationSettings";
import { PluginsAdmin } from "./PluginsAdmin";

const input = "mt-1 w-full rounded-md border border-slate-300 bg-transparent px-3 py-2 font-normal focus:border-indigo-500 focus:outline-none dark:border-slate-600";
const primary = "rounded bg-indigo-600 px-3 py-1.5 text-sm font-semibold text-white disabled:opacity-60";

/** One form of the settings: its own busy state, error and confirmation. */
function Section({ title, children, onSubmit, submit }: {
  title: string; children: ReactNode; submit: string; onSubmit: () => Promise<string | void>;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  async function go(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      setDone((await onSubmit()) || "Saved.");
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form onSubmit={go} className="space-y-2 border-b border-slate-200 pb-4 dark:border-slate-700" aria-label={title}>
      <h3 className="font-semibold">{title}</h3>
      {children}
      {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
      {done && <p role="status" className="text-sm text-green-700">{done}</p>}
      <button type="submit" disabled={busy} className={primary}>{submit}</button>
    </form>
  );
}

function DeviceRow({ client, d, current, onChanged }: { client: MatrixClient; d: Device; current: boolean; onChanged: () => void }) {
  const [name, setName] = useState(d.display_name ?? "");
  const [password, setPassword] = useState("");
  const [signingOut, setSigningOut] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const fail = (e: unknown) => setError(describeError(e));
  return (
    <li data-testid="device" data-device-id={d.device_id} className="space-y-1 rounded border border-slate-200 p-2 text-sm dark:border-slate-700">
      <div className="flex items-center gap-2">
        <input aria-label={`Name of device ${d.device_id}`} value={name} onChange={(e) => setName(e.target.value)}
          className="min-w-0 flex-1 rounded border border-slate-300 bg-transparent px-2 py-1 dark:border-slate-600" />
        <button type="button" className="text-xs underline" onClick={() => { setError(null); renameDevice(client, d.device_id, name).then(onChanged, fail); }}>Rename</button>
        {current ? <span className="text-xs text-green-700">This device</span> : (
          <button type="button" className="text-xs text-red-700 underline" onClick={() => setSigningOut(true)}>Sign out</button>
        )}
      </div>
      <div className="text-xs text-slate-500">{d.device_id}{d.last_seen_ts ? ` · last seen ${new Date(d.last_seen_ts).toLocaleString()}` : ""}</div>
      {signingOut && (
        <div className="flex items-center gap-2">
          <input type="password" aria-label="Your password, to sign the device out" value={password} onChange={(e) => setPassword(e.target.value)}
            className="min-w-0 flex-1 rounded border border-slate-300 bg-transparent px-2 py-1 dark:border-slate-600" />
          <button type="button" className="rounded bg-red-600 px-2 py-1 text-xs font-semibold text-white"
            onClick={() => { setError(null); deleteDevice(client, d.device_id, password).then(onChanged, fail); }}>Confirm sign out</button>
        </div>
      )}
      {error && <p role="alert" className="text-xs text-red-700">{error}</p>}
    </li>
  );
}

export function SettingsDialog({ client, onClose }: { client: MatrixClient; onClose: () => void }) {
  const qc = useQueryClient();
  const profile = useQuery({ queryKey: ["displayname", client.userId], queryFn: () => getDisplayName(client) });
  const ai = useQuery({ queryKey: ["ai-server", client.userId], queryFn: () => getAiServer(client) });
  const devices = useQuery({ queryKey: ["devices", client.userId], queryFn: () => listDevices(client), staleTime: 0 });
  const [name, setName] = useState<string | null>(null);
  const [aiUrl, setAiUrl] = useState<string | null>(null);
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [theme, setTheme] = useState<Theme>(loadTheme);

  return (
    <Dialog title="Settings" onClose={onClose} wide>
      <div className="max-h-[70vh] space-y-4 overflow-y-auto pr-1">
        <Section title="Profile" submit="Save name" onSubmit={async () => {
          await setDisplayName(client, name ?? profile.data ?? "");
          await qc.invalidateQueries({ queryKey: ["displayname", client.userId] });
        }}>
          <label className="block text-sm font-medium">Display name
            <input className={input} value={name ?? profile.data ?? ""} onChange={(e) => setName(e.target.value)} />
          </label>
        </Section>
        <fieldset className="space-y-1 border-b border-slate-200 pb-4 text-sm dark:border-slate-700">
          <legend className="font-semibold">Theme</legend>
          {(["light", "dark", "system"] as const).map((t) => (
            <label key={t} className="mr-4 inline-flex items-center gap-1">
              <input type="radio" name="theme" checked={theme === t} onChange={() => { setTheme(t); applyTheme(t); }} />
              {t === "system" ? "Same as the system" : t === "light" ? "Light" : "Dark"}
            </label>
          ))}
        </fieldset>
        <AccountNotifications client={client} />
        <Section title="Password" submit="Change password" onSubmit={async () => {
          await changePassword(client, current, next);
          setCurrent("");
          setNext("");
          return "Password changed.";
        }}>
          <label className="block text-sm font-medium">Current password
            <input className={input} type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} />
          </label>
          <label className="block text-sm font-medium">New password
            <input className={input} type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} />
          </label>
        </Section>
        <section className="space-y-2 border-b border-slate-200 pb-4 dark:border-slate-700" aria-label="Devices">
          <h3 className="font-semibold">Devices</h3>
          {devices.error && <p role="alert" className="text-sm text-red-700">{describeError(devices.error)}</p>}
          <ul className="space-y-2">
            {devices.data?.map((d) => (
              <DeviceRow key={d.device_id} client={client} d={d} current={d.device_id === client.session.deviceId}
                onChanged={() => void qc.invalidateQueries({ queryKey: ["devices", client.userId] })} />
            ))}
          </ul>
        </section>
        <PluginsAdmin client={client} />
        <Section title="AI features" submit="Save AI server" onSubmit={async () => {
          await setAiServer(client, aiUrl ?? ai.data ?? "");
          await qc.invalidateQueries({ queryKey: ["ai-server", client.userId] });
        }}>
          <label className="block text-sm font-medium">AI server URL
            <input className={input} value={aiUrl ?? ai.data ?? ""} onChange={(e) => setAiUrl(e.target.value)} placeholder="https://ai.example.org" />
          </label>
        </Section>
      </div>
    </Dialog>
  );
}
