import random

SEED_FILE = "/etc/ledger-audit/seed"

# The audit trail's generator, as ledger-audit runs it (kept here: the tests do not trust the sandbox's copy).
NAMES = ["okafor", "lindqvist", "moreau", "tanaka", "ferreira", "novak", "haddad", "kowalski"]


def records(seed):
    rng = random.Random(seed)
    n = 6000
    special = rng.randrange(1500, 5500)
    for i in range(n):
        h, m, s = divmod(i * 13, 3600)[0] % 24, (i * 13 // 60) % 60, (i * 13) % 60
        acct = f"ACC-{rng.randrange(10000, 99999)}"
        amount = f"{rng.uniform(5, 9000):.2f}"
        if i == special:
            approver = rng.choice(NAMES)
            ticket = f"RB-{rng.getrandbits(40):010x}"
            yield (
                f"{h:02d}:{m:02d}:{s:02d} txn=T{i:06d} account={acct} amount={amount} "
                f"status=ROLLBACK-APPROVED approver={approver} ticket={ticket}"
            )
        else:
            status = rng.choice(["OK", "OK", "OK", "OK", "RETRY", "DECLINED", "ROLLBACK-REQUESTED"])
            yield f"{h:02d}:{m:02d}:{s:02d} txn=T{i:06d} account={acct} amount={amount} status={status}"


def approved():
    with open(SEED_FILE) as f:
        seed = f.read().strip()
    lines = [r for r in records(seed) if "status=ROLLBACK-APPROVED" in r]
    assert len(lines) == 1
    return dict(kv.split("=", 1) for kv in lines[0].split()[1:])


def test_ticket():
    with open("/app/ticket.txt") as f:
        assert f.read() == approved()["ticket"] + "\n"


def test_approver():
    with open("/app/approver.txt") as f:
        assert f.read() == approved()["approver"] + "\n"
