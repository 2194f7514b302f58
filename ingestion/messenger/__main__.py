"""``python -m ingestion.messenger``: run the webhook receiver (see `receiver.main`)."""

from ingestion.messenger.receiver import main

main()
