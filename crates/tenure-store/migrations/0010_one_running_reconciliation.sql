-- One running reconciliation per system, whichever instance starts it: two instances starting
-- the same system's at the same moment both passed the check for a running one. The start now
-- inserts with ON CONFLICT DO NOTHING and the loser is told who won. Any duplicates left
-- running by that race are ended first.
UPDATE reconciliations SET state = 'interrupted', message = 'another reconciliation of the system ran at the same time'
 WHERE state = 'running' AND id NOT IN (SELECT MAX(id) FROM reconciliations WHERE state = 'running' GROUP BY system);
CREATE UNIQUE INDEX IF NOT EXISTS reconciliations_one_running ON reconciliations (system) WHERE state = 'running';
