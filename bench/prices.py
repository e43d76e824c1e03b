"""Public us-east-1 on-demand prices (US$) the cost figures use, as published by AWS.

Free tiers are ignored: the figures are the marginal cost of an order at scale.
"""

from __future__ import annotations

HTTP_API_PER_MILLION = 1.00  # HTTP API requests (first 300 M / month), per 512 KB unit
LAMBDA_REQUEST_PER_MILLION = 0.20
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334  # arm64, first 7.5 B GB-s / month; billed per 1 ms
EVENTBRIDGE_EVENTS_PER_MILLION = 1.00  # custom events, per 64 KB chunk of an entry
SQS_REQUESTS_PER_MILLION = 0.40  # standard queue; a batch is 1 request; per 64 KB chunk
DYNAMODB_WRU_PER_MILLION = 0.625  # on-demand write request units (1 KB; transactional x2)
DYNAMODB_RRU_PER_MILLION = 0.125  # on-demand read request units (4 KB strong, x0.5 eventual)
CLOUDWATCH_LOGS_PER_GB = 0.50  # standard log class, ingested
SECRETS_MANAGER_PER_10K_CALLS = 0.05
S3_PUT_PER_THOUSAND = 0.005  # claim checks only (events over 256 KB)
S3_GET_PER_THOUSAND = 0.0004

HTTP_API_UNIT_BYTES = 512 * 1024
EVENTBRIDGE_UNIT_BYTES = 64 * 1024
SQS_UNIT_BYTES = 64 * 1024
GB = 1024**3
