"""Local mode: the whole platform on one machine, from the same environment files the CDK app uses.

    python -m jobfleet_tools local [--env dev] [--port N] [--config-dir DIR] [--handlers mod[,mod]]

Starts moto as a server on 127.0.0.1 and creates in it, from ``load_environment(env)``: per tier the
queue and its DLQ (visibility timeout, retention, RedrivePolicy with the tier's maxReceiveCount —
the same names the CDK app gives them) and the job status table. Then runs, each in its own process
group:

- the job API (``python -m worker api``), with the environment variables the compute stack sets;
- one worker (``python -m worker run``) per service tier, with the ECS task's environment variables;
- for each batch tier, the deployed feed (``batch``): a stand-in for Lambda's SQS event source
  mapping invokes the real feed function (``lambda/batch_submit``), which submits each message to
  moto's Batch API; a stand-in for AWS Batch runs each submitted job's command
  (``python -m worker run-one --envelope ... --generation ...``) with the job definition's
  environment and retry strategy, and sends a finally failed job to the DLQ as the failure rule does.

Ctrl-C or SIGTERM stops everything: the batch feed and executor stop and let running jobs finish,
workers get SIGTERM and drain (the ECS stop timeout applies, then SIGKILL), the API stops, moto stops.
A second Ctrl-C kills at once. Child output goes to log files in the run directory; one line per job
outcome is printed.

Modules, one concern each: ``resources`` (moto and the queues, DLQs and status table in it),
``environment`` (each process's environment, built by the contract's functions the stacks call),
``processes`` (spawning, console output, stopping), ``batch`` (the stand-ins for the batch feed's
event source mapping and for AWS Batch), ``lambda_invoke`` (one Lambda invocation in its own
process), ``fleet`` (starting, watching and stopping the whole), ``cli`` (the command line).
"""
