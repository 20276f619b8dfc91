"""DLQ redrive Lambda: native SQS move tasks or a filtered, rate-limited, dry-runnable selective move."""

from jobfleet_contract.environment import REDRIVE_SERVICE_NAME

SERVICE_NAME = REDRIVE_SERVICE_NAME  # Powertools' service for this package's loggers and tracer
