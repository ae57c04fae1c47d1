-- Several agents serving one region share its servers (src/api/agent.rs): each live agent
-- instance is a row, kept alive by its config polls.
CREATE TABLE agent_instances (
    region TEXT NOT NULL,
    instance TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (region, instance)
);
