"use client";

import { useState, type FormEvent } from "react";
import { describeError } from "@/lib/api";
import { login, register } from "@/lib/auth";
import { useSession } from "@/lib/session";

export function AuthScreen() {
  const baseUrl = useSession((s) => s.baseUrl);
  const signIn = useSession((s) => s.signIn);
  const notice = useSession((s) => s.notice);
  const [mode, setMode] = useState<"login" | "register">("login");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    if (!username.trim() || !password) {
      setError("Enter a username and a password.");
      return;
    }
    if (mode === "register" && password !== confirm) {
      setError("The passwords do not match.");
      return;
    }
    setBusy(true);
    try {
      const user = username.trim().replace(/^@/, "");
      const s = mode === "login" ? await login(baseUrl, user, password) : await register(baseUrl, user, password);
      signIn(s);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  }

  const input = "w-full rounded-md border border-slate-300 px-3 py-2 focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-200";
  return (
    <main className="flex min-h-full items-center justify-center bg-slate-100 p-4">
      <form onSubmit={submit} className="w-full max-w-sm space-y-4 rounded-xl bg-white p-8 shadow" aria-label={mode === "login" ? "Log in" : "Create account"}>
        <h1 className="text-2xl font-bold text-indigo-700">Parley</h1>
        <p className="text-sm text-slate-500">
          {mode === "login" ? "Log in to" : "Create an account on"} <span className="font-medium">{baseUrl.replace(/^https?:\/\//, "")}</span>
        </p>
        {notice && !error && <p className="rounded bg-amber-50 p-2 text-sm text-amber-800">{notice}</p>}
        <label className="block text-sm font-medium">
          Username
          <input className={input} name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label className="block text-sm font-medium">
          Password
          <input className={input} name="password" type="password" autoComplete={mode === "login" ? "current-password" : "new-password"} value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {mode === "register" && (
          <label className="block text-sm font-medium">
            Confirm password
            <input className={input} name="confirm" type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
          </label>
        )}
        {error && (
          <p role="alert" className="rounded bg-red-50 p-2 text-sm text-red-700">{error}</p>
        )}
        <button type="submit" disabled={busy} className="w-full rounded-md bg-indigo-600 py-2 font-semibold text-white hover:bg-indigo-700 disabled:opacity-60">
          {busy ? "Please wait…" : mode === "login" ? "Log in" : "Create account"}
        </button>
        <p className="text-center text-sm text-slate-600">
          {mode === "login" ? "New here? " : "Have an account? "}
          <button type="button" className="font-medium text-indigo-700 underline" onClick={() => { setMode(mode === "login" ? "register" : "login"); setError(null); }}>
            {mode === "login" ? "Create an account" : "Log in"}
          </button>
        </p>
      </form>
    </main>
  );
}
