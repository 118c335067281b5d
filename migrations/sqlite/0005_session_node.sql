-- The broker node that holds a device's session (0: the one node), so that a node marks
-- offline only the devices it held.
ALTER TABLE devices ADD COLUMN session_node INTEGER NOT NULL DEFAULT 0;
