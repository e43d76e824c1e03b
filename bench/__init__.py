"""`make bench`: cold import, AWS requests and cost per order, ingestion overhead, throughput,
layer size. Ratios against baselines measured in the same run; never run by `make test`."""
