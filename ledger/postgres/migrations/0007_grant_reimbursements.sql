-- Journal entries of credits: a draw funded by another member than the reseller.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check CHECK (kind IN (
    'tenant_invoice', 'member_invoice_reseller', 'member_invoice_provider', 'grant_reimbursement',
    'netting', 'transfer'));
