"""How every Kafka client of the project authenticates and encrypts: one declaration for the
confluent-kafka clients (producer, sensors, admin) and for Spark's Kafka source and sink."""

from __future__ import annotations

from dataclasses import dataclass, field

KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_LOGIN_MODULES = {"SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                  "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
                  "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule"}
SASL_MECHANISMS = tuple(_LOGIN_MODULES)


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client (producer, ingest, sensors, admin) authenticates and encrypts:
    SASL with a username and password, TLS with the CA bundle that signed the brokers'
    certificates. The default is plaintext, as on the local broker."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_location: str | None = None  # a PEM file; unset: the system's trusted CAs

    def __post_init__(self):
        if self.protocol not in KAFKA_PROTOCOLS:
            raise ValueError(f"Kafka security protocol {self.protocol!r} is not one of "
                             f"{', '.join(KAFKA_PROTOCOLS)}")
        if self.uses_sasl and self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(f"SASL mechanism {self.sasl_mechanism!r} is not one of "
                             f"{', '.join(SASL_MECHANISMS)}")
        if self.uses_sasl and not (self.username and self.password):
            raise ValueError(f"Kafka security protocol {self.protocol} needs a SASL username and "
                             f"password (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def client_config(self) -> dict[str, str]:
        """Settings of a confluent-kafka (librdkafka) client."""
        config = {"security.protocol": self.protocol}
        if self.uses_sasl:
            config |= {"sasl.mechanisms": self.sasl_mechanism, "sasl.username": self.username,
                       "sasl.password": self.password}
        if self.uses_tls and self.ca_location:
            config["ssl.ca.location"] = self.ca_location
        return config

    def spark_options(self) -> dict[str, str]:
        """The same for Spark's Kafka source and sink: Java client settings, prefixed `kafka.`.
        The CA file must be readable where Spark runs (every executor, on a cluster)."""
        options = {"kafka.security.protocol": self.protocol}
        if self.uses_sasl:
            quoted = {k: v.replace("\\", "\\\\").replace('"', '\\"')
                      for k, v in (("username", self.username), ("password", self.password))}
            options |= {"kafka.sasl.mechanism": self.sasl_mechanism,
                        "kafka.sasl.jaas.config": f'{_LOGIN_MODULES[self.sasl_mechanism]} required '
                                                  f'username="{quoted["username"]}" '
                                                  f'password="{quoted["password"]}";'}
        if self.uses_tls and self.ca_location:
            options |= {"kafka.ssl.truststore.type": "PEM",
                        "kafka.ssl.truststore.location": self.ca_location}
        return options
