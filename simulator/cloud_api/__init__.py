"""WhatsApp Cloud API simulator: Graph `/{version}/{phone_number_id}/messages`,
Meta-shaped errors and signed status webhooks. See README.md in this folder."""
