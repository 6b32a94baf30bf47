//! Outbound webhooks: Standard Webhooks signatures and the guard that keeps
//! deliveries away from internal addresses. The delivery loop itself is the
//! `WebhookDispatcher` actor.

pub mod signing;
pub mod ssrf;
