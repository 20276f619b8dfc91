"""DLQ redrive Lambda: native SQS move tasks or a filtered, rate-limited, dry-runnable selective move."""

SERVICE_NAME = "jobfleet-redrive"
