"""The project's configuration: the one settings table, the Kafka security shared by every client,
and the clients of the services. Below every other layer; imports no Spark and no Dagster."""
