-- The trace context current where a run was started (W3C traceparent, as JSON).
ALTER TABLE :"schema".runs ADD COLUMN trace text;
