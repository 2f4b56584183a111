"""The code location's alert sensors: they watch every job, so they belong to no domain
(``orchestration.definitions`` registers them; what they mail is ``orchestration.alerts``)."""
