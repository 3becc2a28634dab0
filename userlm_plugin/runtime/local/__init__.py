"""The in-process User LM: loading (once per process, on one torch thread), the batching engine, the per-row
sampler and the `LocalBackend` that drafts with them. The only part of the runtime that imports torch; the provider
imports it when the first local draft is needed (`userlm/... -M base_url=` never does)."""
