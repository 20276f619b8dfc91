"""The batch feed: SQS batch-tier queue -> AWS Batch SubmitJob, one job per message."""
