-- The broker node that holds a device's session (0: the one node), so that a node marks
-- offline only the devices it held, and the others can mark offline those of a node
-- that stopped answering (cluster_nodes).
ALTER TABLE devices ADD COLUMN session_node BIGINT NOT NULL DEFAULT 0;

-- Each cluster node's last sign of life, in Unix seconds.
CREATE TABLE cluster_nodes (
    id      BIGINT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
