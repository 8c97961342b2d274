"""The OSB API 2.17 broker: openbrokerapi's blueprint plus a spec-compliance layer."""
