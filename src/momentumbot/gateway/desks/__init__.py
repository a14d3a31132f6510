"""The gateway's desks: one per concern, each owning its state and registering its own handlers
(message id -> handler) in the registry the session dispatcher uses.

Owns: the clock desk (`clock`: market time, calendar events, currentTime), client sessions
(`sessions`: the port, client ids, the registry, outage routing; `connection`: one client's
framing, handshake and output), contracts (`contracts`), market data (`market_data`:
subscriptions and the minute's publishing), history (`history`: historical bars, schedule, head
timestamp, pacing), accounts (`accounts`), orders (`orders` in, `order_reports` out), fault
control (`fault_control`) and when a running clock may go on (`lockstep`: lockstep replay and the
hold before the first open)."""
