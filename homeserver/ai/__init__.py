"""AI features on the user's (or the organization's) own inference server: settings, the
inference client, summaries, reply suggestions, the job queue and smart search."""
