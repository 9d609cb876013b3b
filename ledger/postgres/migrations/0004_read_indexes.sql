-- Indexes for the usage API's reads: usage by time range, dead letters by time and party.
CREATE INDEX claims_by_hour ON claims (hour_start);
CREATE INDEX dead_letters_by_received ON dead_letters (received_ms);
CREATE INDEX dead_letters_by_provider ON dead_letters (provider, id);
CREATE INDEX dead_letters_by_reseller ON dead_letters (reseller, id);
