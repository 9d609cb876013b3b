"""The portal's words in its two languages, Japanese and English, and its menu.

Every `t("key")` of a template is a key here, in both languages (a test reads the
templates and holds them to it). Figures, ids and the ledger's own terms (reasons,
states) are shown as the API writes them.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.domain.access import Caller

LANGUAGES = ("ja", "en")

TEXT: dict[str, tuple[str, str]] = {  # key -> (Japanese, English)
    "title": ("GPU 精算ポータル", "GPU ledger portal"),
    "skip": ("本文へ移動", "Skip to content"),
    "sign_in": ("サインイン", "Sign in"),
    "sign_out": ("サインアウト", "Sign out"),
    "token": ("API トークン", "API token"),
    "token_help": ("gpuledger token create で発行したトークン（glt_…）。セッションはトークンの有効期限で終わります。",
                   "The token `gpuledger token create` printed (glt_…). The session ends when the token expires."),
    "signed_in_as": ("サインイン中", "Signed in as"),
    "operator": ("アライアンス運営", "Alliance operator"),
    "auditor": ("監査", "Auditor"),
    "month": ("月次明細", "Month"),
    "usage": ("利用状況", "Usage"),
    "disputes": ("異議申立て", "Disputes"),
    "payments": ("支払い", "Payments"),
    "grants": ("クレジット", "Grants"),
    "capacity": ("キャパシティ", "Capacity"),
    "dead_letters": ("不受理イベント", "Dead letters"),
    "overview": ("運営ダッシュボード", "Operator overview"),
    "close": ("月次締め", "Close"),
    "error": ("エラー", "Error"),
    "back": ("戻る", "Back"),
    "statement_of": ("明細", "Statement"),
    "closed": ("締め済み", "closed"),
    "open_period": ("未締め（暫定）", "open (provisional)"),
    "previous": ("前月", "Previous month"),
    "next": ("翌月", "Next month"),
    "net": ("差引", "Net"),
    "lines": ("明細行", "Lines"),
    "tenant_invoices": ("テナント請求書", "Tenant invoices"),
    "member_invoices": ("メンバー間請求書", "Member invoices"),
    "returns": ("返戻", "Returns"),
    "grant_draws": ("クレジット充当", "Grant draws"),
    "transfers": ("振込", "Transfers"),
    "documents": ("書類", "Documents"),
    "none": ("ありません", "None"),
    "reseller": ("再販事業者", "Reseller"),
    "provider": ("提供事業者", "Provider"),
    "tenant": ("テナント", "Tenant"),
    "sku": ("SKU", "SKU"),
    "region": ("リージョン", "Region"),
    "service_period": ("利用月", "Service period"),
    "booking_period": ("計上月", "Booking period"),
    "gpu_seconds": ("GPU 秒", "GPU-seconds"),
    "gpu_hours": ("GPU 時間", "GPU-hours"),
    "retail_yen": ("小売額", "Retail"),
    "wholesale_yen": ("卸額", "Wholesale"),
    "price": ("単価（円/GPU 時）", "Price (¥/GPU-hour)"),
    "credit_yen": ("クレジット", "Credit"),
    "subtotal_yen": ("小計", "Subtotal"),
    "tax_yen": ("消費税", "Tax"),
    "total_yen": ("合計", "Total"),
    "amount_yen": ("金額", "Amount"),
    "restored_yen": ("戻入", "Restored"),
    "grant": ("クレジット", "Grant"),
    "funder": ("原資負担", "Funder"),
    "from": ("支払元", "From"),
    "to": ("支払先", "To"),
    "pseudonym_note": ("他の再販事業者のテナントは仮名で表示されます。", "Other resellers' tenants are shown as pseudonyms."),
    "dispute_line": ("異議", "Dispute"),
    "dispute_line_label": ("この行に異議を申し立てる", "Dispute this line"),
    "kind": ("種類", "Kind"),
    "issuer": ("発行者", "Issuer"),
    "recipient": ("宛先", "Recipient"),
    "download": ("ダウンロード", "Download"),
    "today": ("今日", "Today"),
    "this_month": ("今月", "This month"),
    "period": ("月", "Period"),
    "line": ("明細行（テナント・提供・再販・SKU）", "Line (tenant, provider, reseller, SKU)"),
    "group_by": ("集計単位", "Group by"),
    "filter": ("絞り込み", "Filter"),
    "apply": ("表示", "Show"),
    "chart_title": ("日別 GPU 時間", "GPU-hours by day"),
    "chart_refresh": ("1 分ごとに更新", "refreshes every minute"),
    "estimate_note": ("金額は見積りです（確定は月次締め）。", "Amounts are estimates until the month is closed."),
    "day": ("日", "Day"),
    "state": ("状態", "State"),
    "reason": ("理由", "Reason"),
    "note": ("メモ", "Note"),
    "history": ("履歴", "History"),
    "by": ("実行者", "By"),
    "at": ("日時", "At"),
    "action": ("操作", "Action"),
    "open_dispute": ("異議を申し立てる", "Open a dispute"),
    "gpu_uuid": ("GPU UUID", "GPU UUID"),
    "interval_from": ("開始（RFC 3339）", "From (RFC 3339)"),
    "interval_to": ("終了（RFC 3339、含まない）", "To (RFC 3339, exclusive)"),
    "accept": ("承認", "Accept"),
    "reject": ("却下", "Reject"),
    "escalate": ("運営に上申", "Escalate"),
    "withdraw": ("取下げ", "Withdraw"),
    "decide_accept": ("裁定：承認", "Decide: accept"),
    "decide_reject": ("裁定：却下", "Decide: reject"),
    "escalation_deadline": ("上申期限", "Escalate by"),
    "voided_gpu_seconds": ("取消 GPU 秒", "Voided GPU-seconds"),
    "awaiting_you": ("あなたの対応待ち", "Awaiting you"),
    "dispute": ("異議", "Dispute"),
    "as_of": ("基準日", "As of"),
    "due": ("期日", "Due"),
    "paid_yen": ("入金確認済", "Paid"),
    "pending_yen": ("確認待ち", "Pending"),
    "status": ("状況", "Status"),
    "days_overdue": ("延滞日数", "Days overdue"),
    "record_payment": ("支払いを記録", "Record a payment"),
    "paid_on": ("支払日", "Paid on"),
    "reference": ("振込参照番号", "Reference"),
    "confirm": ("入金確認", "Confirm"),
    "payment": ("支払い", "Payment"),
    "you_owe": ("支払うもの", "You owe"),
    "owed_to_you": ("受け取るもの", "Owed to you"),
    "first_period": ("開始月", "First period"),
    "last_period": ("終了月", "Last period"),
    "drawn_yen": ("充当済", "Drawn"),
    "balance_yen": ("残高", "Balance"),
    "lapsed_yen": ("失効", "Lapsed"),
    "through": ("まで", "Through"),
    "registered_gpus": ("登録 GPU", "Registered GPUs"),
    "registered_gpu_seconds": ("登録 GPU 秒", "Registered GPU-seconds"),
    "billed_gpu_seconds": ("課金 GPU 秒", "Billed GPU-seconds"),
    "resold_gpu_seconds": ("他社再販 GPU 秒", "Resold GPU-seconds"),
    "received_at": ("受信", "Received"),
    "detail": ("詳細", "Detail"),
    "replayed": ("再判定済", "Replayed"),
    "replay": ("再判定", "Replay"),
    "replay_selected": ("選択したものを再判定", "Replay the selected"),
    "select": ("選択", "Select"),
    "replay_done": ("再判定しました", "Replayed"),
    "more": ("さらに表示", "More"),
    "members": ("メンバー", "Members"),
    "member": ("メンバー", "Member"),
    "name": ("名称", "Name"),
    "closed_through": ("締め済み", "Closed through"),
    "awaiting_decision": ("裁定待ちの異議", "Disputes awaiting a decision"),
    "overdue_transfers": ("延滞中の振込", "Overdue transfers"),
    "dead_letter_reasons": ("不受理の理由（過去 30 日）", "Dead letters by reason (last 30 days)"),
    "count": ("件数", "Count"),
    "pipeline": ("パイプラインの状態", "Pipeline health"),
    "workers": ("ワーカー", "Workers"),
    "lag": ("遅延（レコード）", "Lag (records)"),
    "last_event": ("最新イベント", "Last event"),
    "topic": ("トピック", "Topic"),
    "partition": ("パーティション", "Partition"),
    "position": ("処理済み位置", "Position"),
    "batches_metered": ("計量済みバッチ", "Batches metered"),
    "close_preview": ("締める前に確認", "Before closing"),
    "close_what_changes": ("締めると、この明細が確定し保存され、仕訳が記帳されます。以後この月は変わりません。",
                           "Closing stores this statement and posts its journal entries; the month never changes after."),
    "close_confirm": ("この月を締める", "Close this month"),
    "close_done": ("締めました", "Closed"),
    "statement_total": ("明細の合計", "Statement totals"),
    "invoices": ("請求書", "Invoices"),
    "language": ("English", "日本語"),
    "no_access": ("このページはアライアンス運営のみ", "This page is for the alliance operator"),
    "paid": ("支払済", "paid"),
    "overdue": ("延滞", "overdue"),
    "due_state": ("期日前", "due"),
    "saved": ("保存しました", "Saved"),
    "optional": ("任意", "optional"),
    "required": ("必須", "required"),
    "period_to_close": ("締める月", "Month to close"),
    "show": ("表示", "Show"),
    "open_disputes_count": ("対応中の異議", "Open disputes"),
    "pipeline_note": ("位置と時刻は台帳が記録したもの、ワーカー数と遅延は各ワーカーの /metrics を今読んだものです（GPULEDGER_WORKER_METRICS_URLS）。",
                      "Positions and times as the ledger recorded them; workers and lag read now from each worker's /metrics (GPULEDGER_WORKER_METRICS_URLS)."),
}

# The ledger's own codes (states, moves, dispute reasons) in Japanese; English shows the
# code itself, as the API and the CLI print it. A code not listed is shown as it is.
TERMS: dict[str, str] = {
    "open": "対応中", "accepted": "承認", "rejected": "却下", "escalated": "上申中", "withdrawn": "取下げ",
    "recorded": "確認待ち", "confirmed": "入金確認済", "accept": "承認", "reject": "却下", "escalate": "上申",
    "withdraw": "取下げ", "decide_accept": "裁定：承認", "decide_reject": "裁定：却下",
    "not_used": "未使用", "wrong_tenant": "テナント違い", "wrong_sku": "SKU 違い", "outage": "障害",
    "duplicate_report": "重複報告", "other": "その他",
}


def term(lang: str) -> Callable[[str], str]:
    def shown(code: str) -> str:
        return TERMS.get(code, code) if lang == "ja" else code

    return shown


# What each kind of caller finds in the menu: (key, path).
MEMBER_MENU = (("month", "/portal/months"), ("usage", "/portal/usage"), ("disputes", "/portal/disputes"),
               ("payments", "/portal/payments"), ("grants", "/portal/grants"), ("capacity", "/portal/capacity"),
               ("dead_letters", "/portal/dead-letters"))
OPERATOR_MENU = (("overview", "/portal/operator"), ("close", "/portal/operator/close"), *MEMBER_MENU)
AUDITOR_MENU = (("overview", "/portal/operator"), *MEMBER_MENU)  # reads all, closes nothing


def translator(lang: str) -> Callable[[str], str]:
    index = LANGUAGES.index(lang) if lang in LANGUAGES else 0

    def t(key: str) -> str:
        return TEXT[key][index]

    return t


def navigation(caller: Caller | None) -> tuple[tuple[str, str], ...]:
    if caller is None:
        return ()
    return {"admin": OPERATOR_MENU, "auditor": AUDITOR_MENU}.get(caller.role, MEMBER_MENU)
