-- Trace context (W3C Trace Context). `runs.traceparent` is the span context a run was created
-- under, so its steps, claimed later by other tasks or after a restart, join the same trace.
-- `audit_log.trace_id` is the trace an entry was written in (32 hex digits). Both stay empty
-- while OTLP export is off.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS traceparent TEXT;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS trace_id TEXT;
