"""Creates /app/data/app.db: a product analytics extract (users, events)."""
import datetime as dt
import os
import random
import sqlite3

random.seed(4242)
os.makedirs("/app/data", exist_ok=True)
db = sqlite3.connect("/app/data/app.db")
db.executescript("""
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    signup_ts TEXT NOT NULL,          -- UTC, 'YYYY-MM-DD HH:MM:SS'
    country TEXT,
    is_test INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    event_type TEXT NOT NULL,
    ts                                  -- UTC; see docs/events.md
);
CREATE INDEX events_user ON events(user_id);
""")
UTC = dt.timezone.utc
t0 = dt.datetime(2023, 12, 18, tzinfo=UTC)
t_end = dt.datetime(2024, 5, 6, tzinfo=UTC)
countries = ["DE", "FR", "US", "BR", "JP", "IN"]
uid = 0
eid = 0
users, events = [], []
for day in range((dt.datetime(2024, 4, 14, tzinfo=UTC) - t0).days):
    for _ in range(random.randint(2, 9)):
        uid += 1
        signup = t0 + dt.timedelta(days=day, seconds=random.randint(0, 86399))
        test = random.random() < 0.05
        email = f"user{uid}@" + random.choice(["mail.example", "post.example", "inbox.example"])
        if random.random() < 0.03:
            email = f"qa{uid}@test.internal"
        deleted = None
        if random.random() < 0.06:
            deleted = (signup + dt.timedelta(days=random.randint(1, 60))).strftime("%Y-%m-%d %H:%M:%S")
        users.append((uid, email, signup.strftime("%Y-%m-%d %H:%M:%S"), random.choice(countries), int(test), deleted))
        # activity: each user has an engagement half-life
        stickiness = random.random()
        t = signup + dt.timedelta(minutes=random.randint(1, 120))
        while t < t_end:
            etype = random.choices(["login", "view", "purchase", "email_open"], [40, 40, 5, 15])[0]
            if random.random() < 0.25:
                ts = int(t.timestamp())                      # legacy ingestion: unix epoch seconds
            else:
                ts = t.strftime("%Y-%m-%d %H:%M:%S")
            eid += 1
            events.append((eid, uid, etype, ts))
            gap_days = random.expovariate(1.0) * (1.5 + 12 * (1 - stickiness))
            if random.random() > 0.35 + 0.6 * stickiness:
                gap_days *= 4
            t += dt.timedelta(days=gap_days)
        # marketing e-mails keep arriving for everyone: email_open events every week or so
        t = signup + dt.timedelta(days=random.uniform(3, 8))
        while t < t_end and random.random() < 0.8:
            eid += 1
            events.append((eid, uid, "email_open", t.strftime("%Y-%m-%d %H:%M:%S")))
            t += dt.timedelta(days=random.uniform(5, 9))
        # clock-skewed client: an event logged before the signup
        if random.random() < 0.02:
            eid += 1
            events.append((eid, uid, "view", (signup - dt.timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S")))
random.shuffle(events)
db.executemany("INSERT INTO users VALUES (?,?,?,?,?,?)", users)
db.executemany("INSERT INTO events VALUES (?,?,?,?)", events)
db.commit()
db.execute("VACUUM")
db.close()
