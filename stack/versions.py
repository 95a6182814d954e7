"""The service versions the local stack runs, chosen to match the pinned Python clients."""

# KRaft-only broker line; runs on Java 17.
KAFKA_VERSION = "4.1.1"
KAFKA_SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.17"

# Newest integ-test zip on Maven Central, and the major version of the pinned Python client.
ELASTICSEARCH_VERSION = "8.19.21"

MIN_JAVA = 17

# pyspark ships the Spark Connect server; this is its default port.
SPARK_CONNECT_PORT = 15002
