-- Message search on a stored tsvector: the planner gets real statistics for it, and checking a row
-- while walking the time index costs a lookup instead of re-running the regexp of mg_search_vector.
DROP INDEX messages_search;
ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (mg_search_vector(search_text)) STORED;
CREATE INDEX messages_search_vector ON messages USING gin (search_vector);
