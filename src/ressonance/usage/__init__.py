"""Usage metering: what each app used, per UTC day (messages, peak connections)."""
