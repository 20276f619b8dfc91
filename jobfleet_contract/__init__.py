"""What JobFleet's parts agree on, defined once: the worker, the job API, the redrive Lambda, local
mode and the stacks all import it (the image and the Lambda asset ship it). No aws-cdk-lib, no
third-party imports except boto3/botocore in the status store.
"""
