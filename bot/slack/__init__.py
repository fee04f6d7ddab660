"""Slack: run and watch the guardrails from chat.

- `commands`  pure: parse `/guard pause smartlead:1,smartlead:2 reason` and Slack's request forms into Events
- `blocks`    pure: Block Kit messages for notices, digests, replies and clicked buttons
- `delivery`  SlackNotifier (enqueues notices) and SlackDeliverer (sends the outbox with slack_sdk)
- `incidents` pure: which notices open, join and end a campaign's incident (one message, edited in place)
- `daily`     pure: the daily digest as Block Kit and as plain text (built by bot.digest)
- `operator`  the worker side of commands and clicks: permissions, holds, reconcile, reply
- `actions`, `views`  what a pause/resume/click does to one campaign; status/list/history texts

The HTTP edge is `bot.web.slack` (verify, parse, publish, ack); the outbox table is `bot.state.outbox`.
"""

from __future__ import annotations
