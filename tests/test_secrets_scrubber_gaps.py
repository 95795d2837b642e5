"""Storage scrubber gaps found on unseen data: a URL password with an empty user (redis://:pw@host), an upper-case
env name glued to a prefix (PGPASSWORD=), and a Chinese password name followed by a space."""

from flywheel.text.secrets import REDACTED, scrub_secrets


def test_url_password_with_empty_user_is_scrubbed():
    assert scrub_secrets("REDIS_URL=redis://:Hk3v9QpZ2w@cache.internal:6379/0") == (
        f"REDIS_URL=redis://:{REDACTED}@cache.internal:6379/0")


def test_upper_case_env_password_glued_to_a_prefix():
    assert "VqrpRsYExLuZ" not in scrub_secrets("set PGPASSWORD=VqrpRsYExLuZ")
    assert scrub_secrets("passwords: 3") == "passwords: 3"


def test_chinese_password_after_a_space():
    assert scrub_secrets("用户名 admin 密码 Ab12!xyz9") == f"用户名 admin 密码 {REDACTED}"
    assert scrub_secrets("密码 错误，请重试") == "密码 错误，请重试"
