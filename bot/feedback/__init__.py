"""Persistence without Telegram: the feedback store, its group commit and its salts."""
