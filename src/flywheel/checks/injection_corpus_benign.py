"""Benign texts that share vocabulary with prompt-injection attacks, written for flywheel's injection model.

Ordinary users ask about passwords and access codes, paste instructions and manuals, talk about AI
and system prompts, ask for code, translations and summaries, and documentation is full of
imperatives ("ignore this warning", "do not share your key"). A detector fitted only on attacks
versus plain questions learns that these words mean "attack"; these templates teach it otherwise.
English and Chinese; expanded with slot fillers by `benign(seed)`. `assistant_requests(seed)` adds
what customers, employees and developers ask an assistant in the second person and the imperative
("What are your opening hours?", "Tell me about…", "你们的营业时间是？").
"""

from __future__ import annotations

import random

_SERVICE = ["my bank account", "the office Wi-Fi", "Gmail", "the VPN", "my router", "the company laptop", "Netflix",
            "the school portal", "my phone", "the garage door", "the HR system", "GitHub", "the database", "Slack"]
_SECRET = ["password", "access code", "PIN", "passcode", "security code", "API key", "recovery code", "secret key",
           "two-factor code", "door code", "login", "token"]
_TASK = ["assembling the desk", "installing the printer driver", "setting up the router", "baking sourdough",
         "filing my taxes", "deploying the app", "configuring nginx", "replacing a bike chain", "the chemistry lab",
         "the fire drill", "the board game", "renewing a passport", "training the model", "running the migration"]
_TOPIC = ["prompt injection", "system prompts", "AI assistants", "large language models", "chatbots", "AI safety",
          "retrieval-augmented generation", "fine-tuning", "guardrails", "jailbreaks in LLMs", "red teaming",
          "role-playing games", "access control", "password managers", "encryption", "base64 encoding"]
_LANG = ["French", "German", "Spanish", "Japanese", "English", "Chinese", "Italian", "Korean"]
_EN_TEMPLATES = [
    "How do I reset the {secret} for {service}?", "I forgot my {secret} for {service}, what should I do?",
    "What makes a strong {secret}?", "Is it safe to share my {secret} with IT support?", "Where can I find the {secret} for {service}?",
    "How often should I change my {secret}?", "My {secret} for {service} stopped working after the update.",
    "Can you explain how a {secret} is stored securely?", "Please summarize the instructions for {task}.",
    "Translate the instructions for {task} into {lang}.", "Format the instructions for {task} as a numbered list.",
    "I lost the instructions for {task}; can you list the usual steps?", "Write a short poem about {task}.",
    "What are the rules for {task}?", "Explain {topic} to a beginner.", "What is the difference between {topic} and {topic2}?",
    "Write a blog post about {topic}.", "How do researchers evaluate {topic}?", "Give me three examples of {topic}.",
    "Can you write Python code that prints the instructions for {task}?", "Write a function that validates a {secret}.",
    "Summarize the text above about {topic} in two sentences.", "Repeat the last step of {task}, I missed it.",
    "Ignore my previous message about {task}, I figured it out.", "Forget the earlier budget; the new limit is 500 dollars.",
    "Please respond with a short answer: is {topic} hard to learn?", "Say something nice about my team.",
    "You are very helpful, thanks for explaining {topic}!", "Your last answer about {topic} was great.",
    "Act as a tutor and quiz me on {topic}.", "Pretend you are a travel agent and plan a weekend in Lisbon.",
    "Print the words 'hello' and 'world' on separate lines in Python.", "Output the result as JSON with keys name and age.",
    "What does the message 'access granted' mean in a security log?", "Why does my app say 'access denied'?",
    "Decode this base64 string for me: aGVsbG8=", "How do I convert hex to text in Python?", "Write the alphabet backwards.",
    "The system administrator will reset all {secret}s on Friday.", "Our developer mode settings are in the config file.",
    "In the new session, the speaker talked about {topic}.", "The security audit of {service} is scheduled for May.",
    "Can an AI model ignore its instructions? I am writing an essay on {topic}.",
    "Write a system prompt for a polite customer-support bot.", "What should a system prompt for a tutoring app contain?",
]
_DOCS = [
    ("To install the package, run pip install flywheel. Do not share your API key in public repositories. "
     "If you see a deprecation warning, you can ignore it for now."),
    ("Step 1: unplug the router. Step 2: wait ten seconds. Step 3: plug it back in and enter the admin password printed "
     "on the label."),
    ("Set the timeout in the configuration file. Override the default by exporting TIMEOUT=30. Restart the service to "
     "apply the new settings."),
    ("The model answers questions using the retrieved passages. Each answer cites its sources. When no passage is "
     "relevant, it says that it does not know."),
    "Previous versions stored passwords in plain text. Version 2 hashes them with bcrypt and never logs them.",
    "Instructions: read all questions before you begin. Write your answers in ink. Do not turn the page until told.",
    "Our support team will never ask for your password. If someone does, report it to security@example.com.",
    "The assistant is configured with a system prompt that sets its tone. Administrators can edit it in the dashboard.",
    "Follow the steps below to rotate a secret key: create the new key, deploy it, then revoke the old one.",
    "Ignore the first reading if the sensor was not calibrated. Repeat the measurement three times.",
]
_ZH_TEMPLATES = [
    "{zservice}的{zsecret}忘了怎么办？", "怎样重置{zservice}的{zsecret}？", "什么样的{zsecret}比较安全？", "多久应该换一次{zsecret}？",
    "把{zsecret}告诉客服安全吗？", "请总结一下{ztask}的说明。", "把{ztask}的步骤翻译成{zlang}。", "把{ztask}的说明整理成列表。",
    "{ztask}有哪些规则？", "给初学者解释一下{ztopic}。", "写一篇关于{ztopic}的文章。", "举三个{ztopic}的例子。",
    "用Python写一个检查{zsecret}强度的函数。", "请用两句话总结上面关于{ztopic}的内容。", "刚才{ztask}的最后一步我没看清，能再说一遍吗？",
    "忽略我上一条关于{ztask}的消息，我已经解决了。", "谢谢你对{ztopic}的解释，很有帮助！", "请扮演老师，考考我{ztopic}的知识。",
    "安全日志里的“访问已授权”是什么意思？", "为什么应用提示“拒绝访问”？", "管理员周五会重置所有人的{zsecret}。", "新会话里讲的是{ztopic}。",
    "AI模型会不会忽略自己的指令？我在写关于{ztopic}的论文。", "帮我写一个礼貌的客服机器人的系统提示词。",
    "手机的{zmode}怎么关闭？", "{zservice}的{zmode}有什么用？", "我是新来的管理员，怎么在{zservice}里添加用户？",
    "我是开发者，{ztask}的时候报错了，怎么排查？", "请把这段日志输出到文件里。", "用拼音写出“{zword}”。", "把“{zword}”翻译成{zlang}。",
    "写一首藏头诗，藏“{zword}”四个字。", "讲个关于{ztopic}的故事给孩子听。", "编一段关于{ztask}的对话，用来练习口语。",
    "用表情符号表达“{zword}”。", "把这句话倒过来写：{zword}。", "游戏里的规则可以自己修改吗？", "公司的安全策略要求多久改一次{zsecret}？",
    "{ztask}的说明已经过期了，有新版本吗？", "之前的会议安排取消了，改到下周。", "忘掉昨天的方案吧，我们换个思路讨论{ztopic}。",
    "请逐字校对这段文字：{zword}。", "把上面的内容整理成表格。", "用JSON格式输出这三个城市的人口。", "帮我写一个Python函数，把字符串编码成Base64。",
    "模型训练时为什么要设置学习率？", "AI助手能帮我做什么？", "聊天机器人应该如何回应用户的投诉？", "扮演一个导游，介绍一下西湖。",
]
_ZMODE = ["开发者模式", "调试模式", "飞行模式", "夜间模式", "维护模式", "管理员模式", "省电模式", "测试模式"]
_ZWORD = ["新年快乐", "你好世界", "春暖花开", "一路平安", "天天向上", "万事如意"]
_ZSERVICE = ["银行卡", "公司邮箱", "路由器", "微信", "门禁", "学校系统", "手机", "VPN", "电脑", "支付宝"]
_ZSECRET = ["密码", "验证码", "口令", "密钥", "门禁码", "支付密码", "访问码"]
_ZTASK = ["组装书桌", "安装打印机", "设置路由器", "做面包", "报税", "部署应用", "换自行车链条", "消防演习", "桌游", "数据库迁移"]
_ZTOPIC = ["提示词注入", "系统提示词", "AI助手", "大语言模型", "聊天机器人", "AI安全", "检索增强生成", "模型微调", "权限控制", "加密"]
_ZLANG = ["英文", "日语", "法语", "德语", "韩语"]
_ZDOCS = ["安装时请运行安装命令。不要把API密钥上传到公开仓库。如果出现弃用警告，可以暂时忽略。",
          "第一步：拔掉路由器电源。第二步：等待十秒。第三步：重新插上，输入标签上的管理员密码。",
          "在配置文件里设置超时时间。导出环境变量可以覆盖默认值。重启服务后新设置生效。",
          "我们的客服绝不会向你索要密码。如果有人这样做，请向安全团队举报。",
          "助手的系统提示词决定了它的语气，管理员可以在后台修改。", "如果传感器没有校准，请忽略第一次读数，并重复测量三次。"]


def benign(seed: int = 0, n_en: int = 900, n_zh: int = 900) -> list[str]:
    """Benign texts with attack-like vocabulary (deterministic for a seed)."""
    rng = random.Random(seed)
    out = list(_DOCS) + list(_ZDOCS)
    for _ in range(n_en):
        topic, topic2 = rng.sample(_TOPIC, 2)
        text = rng.choice(_EN_TEMPLATES).format(secret=rng.choice(_SECRET), service=rng.choice(_SERVICE),
                                                task=rng.choice(_TASK), topic=topic, topic2=topic2,
                                                lang=rng.choice(_LANG))
        if rng.random() < 0.15:
            text = " ".join(rng.sample(_DOCS, 2)) + " " + text
        out.append(text.lower() if rng.random() < 0.15 else text)
    for _ in range(n_zh):
        text = rng.choice(_ZH_TEMPLATES).format(zservice=rng.choice(_ZSERVICE), zsecret=rng.choice(_ZSECRET),
                                                ztask=rng.choice(_ZTASK), ztopic=rng.choice(_ZTOPIC),
                                                zlang=rng.choice(_ZLANG), zmode=rng.choice(_ZMODE),
                                                zword=rng.choice(_ZWORD))
        if rng.random() < 0.15:
            text = "".join(rng.sample(_ZDOCS, 2)) + text
        out.append(text)
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- technical documents and tool results

_FIELDS = ["timeout", "retries", "model", "base_url", "api_key_env", "threshold", "backend", "tenant", "ttl_s", "k",
           "chunk_tokens", "overlap", "embedder", "store", "prompt", "version", "price", "fallbacks", "region", "port",
           "log_level", "max_tokens", "temperature", "enabled", "path", "user", "password_env", "cache", "workers"]
_VALUES = ["30", "3", "gpt-4o-mini", "https://api.example.com/v1", "OPENAI_API_KEY", "0.92", "redis://127.0.0.1:6379",
           "default", "3600", "5", "256", "32", "local", "sqlite:///.flywheel/db", "prompts/qa.yaml", "2024-05-01",
           "true", "false", "[cheap, small]", "eu-west-1", "8080", "INFO", "1024", "0.2", "/var/data", "admin", "DB_PASSWORD"]
_MEANINGS = ["how long to wait before giving up", "how many times to retry a failed call", "which model answers",
             "the endpoint to call", "the environment variable that holds the key", "the minimum similarity for a hit",
             "where entries are stored", "the tenant whose data is searched", "seconds before an entry expires",
             "how many passages to retrieve", "size of a chunk", "tokens shared by neighbouring chunks",
             "the environment variable that holds the password", "whether the feature is on", "log verbosity"]
_WORDS = ["request", "user", "order", "invoice", "session", "chunk", "document", "answer", "trace", "span", "model",
          "status", "error", "result", "score", "city", "price", "name", "id", "created_at", "tags", "url"]


def technical_docs(seed: int = 0, n: int = 600) -> list[str]:
    """Markdown tables, YAML and JSON blocks, CLI help, logs and code: the shape of retrieved docs and tool results."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.randrange(6)
        fields = rng.sample(_FIELDS, rng.randint(3, 8))
        if kind == 0:
            rows = "\n".join(f"| `{f}` | `{rng.choice(_VALUES)}` | {rng.choice(_MEANINGS)} |" for f in fields)
            text = f"| field | default | meaning |\n|---|---|---|\n{rows}"
        elif kind == 1:
            body = "\n".join(f"  {f}: {rng.choice(_VALUES)}" for f in fields)
            text = f"```yaml\n{rng.choice(_WORDS)}:\n{body}\n```\nSet `{fields[0]}` to change {rng.choice(_MEANINGS)}."
        elif kind == 2:
            obj = {w: rng.choice([rng.randint(0, 9999), rng.choice(_VALUES), None, True]) for w in rng.sample(_WORDS, 6)}
            text = "Tool result: " + repr(obj).replace("'", '"').replace("None", "null").replace("True", "true")
        elif kind == 3:
            opts = "\n".join(f"  --{f.replace('_', '-')} VALUE   {rng.choice(_MEANINGS)}" for f in fields)
            text = f"Usage: tool {rng.choice(_WORDS)} [OPTIONS]\n\nOptions:\n{opts}\n  --help   Show this message and exit."
        elif kind == 4:
            text = "\n".join(f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 12:0{rng.randint(0, 9)}:11 "
                             f"{rng.choice(['INFO', 'WARN', 'ERROR'])} {rng.choice(_WORDS)} {rng.choice(_MEANINGS)} "
                             f"id={rng.randint(100, 999)}" for _ in range(rng.randint(3, 8)))
        else:
            a, b = rng.sample(_WORDS, 2)
            text = (f"```python\nresult = client.{a}(\"{rng.choice(_VALUES)}\", {fields[0]}={rng.choice(_VALUES)!r})\n"
                    f"print(result.{b}, result.{fields[1]})\n```\nSee {rng.choice(_VALUES[3:4])}/docs/{a} for details.")
        out.append(text)
    return out


# ---------------------------------------------------------------- documentation prose addressed to the reader

_EN_DOC = [
    "You can set `{field}` in the configuration file to change {meaning}.", "If you want {meaning}, set `{field}` to {value}.",
    "Your code does not need to change when you move from SQLite to PostgreSQL.", "You should never commit your {secret} to git.",
    "Keep your {secret} in an environment variable and point `{field}` at it.", "When you run the command, it prints {meaning}.",
    "If you see a warning about `{field}`, you can ignore it unless you changed {meaning}.",
    "Your answers are cached, so a repeated question returns in milliseconds.", "You will find the logs under `.flywheel/`.",
    "Before you upgrade, back up your database and read the release notes.", "The system prompt tells the model {meaning}.",
    "Each request records {meaning} so that you can debug it later.", "You may override `{field}` per request.",
    "It runs offline on your laptop and grows onto a server without changing your code.",
    "The model answers from the retrieved passages and cites them; you can click a citation to open the source.",
    "Secrets in your traces are replaced with [REDACTED] before they are stored.", "To rotate your {secret}, create a new one first.",
    "Do not share your {secret} with anyone, including support staff.", "You are responsible for keeping your {secret} safe.",
    "The assistant ignores retrieved text that looks like instructions and tells you when it did.",
]
_ZH_DOC = [
    "在配置文件中设置 `{field}`，可以修改{zmeaning}。", "不要把{zsecret}写进配置文件，用环境变量保存。", "模型别名可以在 `models:` 中添加。",
    "提示词文件里的 `system` 字段就是系统提示词，它决定了模型的语气。", "每次请求都会记录{zmeaning}，方便以后排查。",
    "敏感信息在写入存储之前会被替换为 `[REDACTED]`。", "如果检索不到相关内容，系统会直接回答“我不知道”。",
    "你可以用 `{field}` 覆盖默认值。", "升级之前请先备份数据库，并阅读更新说明。", "网关会按顺序尝试备用模型，直到有一个成功。",
    "中文文档在建立索引之前会先分词。", "回答会引用检索到的段落，点击引用可以打开原文。", "固定模型版本的方法是在别名上设置 `version:`。",
    "护栏会在输入和输出两侧检查，失败时可以拦截、改写或重新生成。", "缓存命中时直接返回结果，不再调用模型。", "用 `flywheel traces` 列出最近的记录。",
    "管理员可以在后台修改{zmeaning}。", "这个命令会输出{zmeaning}。", "请勿将{zsecret}泄露给任何人，包括客服人员。",
]
_ZH_MEANING = ["超时时间", "重试次数", "使用的模型", "相似度阈值", "缓存的有效期", "检索的段落数", "日志级别", "耗时和费用", "回答的语言"]


def documentation(seed: int = 0, n_en: int = 500, n_zh: int = 400) -> list[str]:
    """Documentation sentences and short paragraphs that address the reader (English and Chinese)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_en):
        k = rng.choice([1, 1, 2, 3])
        out.append(" ".join(rng.choice(_EN_DOC).format(field=rng.choice(_FIELDS), meaning=rng.choice(_MEANINGS),
                                                      value=rng.choice(_VALUES), secret=rng.choice(_SECRET))
                            for _ in range(k)))
    for _ in range(n_zh):
        k = rng.choice([1, 1, 2, 3])
        out.append("".join(rng.choice(_ZH_DOC).format(field=rng.choice(_FIELDS), zmeaning=rng.choice(_ZH_MEANING),
                                                     zsecret=rng.choice(_ZSECRET)) for _ in range(k)))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- requests addressed to the assistant
#
# Customers, employees and developers talk to an assistant in the second person ("What are your opening
# hours?", "Can you help me…", "你们的营业时间是？") and in the imperative ("Tell me about…", "Show me…").
# The questions of the public benign sets (encyclopedia questions, news sentences) almost never do,
# so without these a model learns that "your" and "you" mean an attack. The user here asks about the
# business, the product or the assistant itself (name, capabilities, languages, privacy) without trying to
# override or extract its instructions. The evaluation set for this kind of text,
# tests/data/injection_benign_assistant.jsonl, is written separately and is never trained on.

_AS_YOUR_THING = [  # "What's your …?" (singular)
    "opening time on Saturdays", "refund policy", "return policy", "returns process", "delivery charge", "shipping fee to Canada",
    "customer service number", "head office address", "support email", "cancellation policy", "warranty period",
    "price for the large size", "cheapest plan", "most popular plan", "lead time for custom orders", "minimum order value",
    "policy on damaged items", "price match guarantee", "late checkout fee", "check-out time", "baggage allowance for economy",
    "pet policy", "parking situation", "nearest branch to the station", "busiest time of day", "holiday schedule",
    "student price", "trade-in offer", "repair turnaround time", "installation fee", "service area", "booking deadline",
    "menu for kids", "dish of the day", "corkage fee", "fuel surcharge", "deposit policy", "loyalty scheme", "referral offer",
    "uptime guarantee", "data retention period", "support plan for startups", "API base URL", "status page", "SDK for Go",
    "latest release", "changelog", "pricing for enterprise customers", "invoice address", "VAT number", "company registration number",
    "name", "full name", "first name", "job here", "role in this chat", "main purpose", "specialty", "favourite book",
    "knowledge cutoff", "response time", "privacy policy", "cookie policy", "terms of service", "accessibility statement",
    # nouns that share their first letters with "prompt", "password", "secret", "rules", "instructions", "code"
    "price for two people", "premium plan", "product range", "promo code for new customers", "promotion this month",
    "privacy notice", "phone line for orders", "postcode for the warehouse", "payment deadline", "parking fee", "pickup point",
    "professional plan", "project timeline", "processing time", "policy on lost parcels", "price per kilo", "preferred courier",
    "pass for the gym", "passport requirement for the tour", "password reset page", "PIN reset process", "security deposit",
    "service charge", "shipping cost", "store address", "sale price", "standard delivery time", "size guide", "student offer",
    "setup fee", "signup bonus", "subscription price", "schedule for next week", "return window", "refund timeline",
    "room rate for tonight", "reservation policy", "repair policy", "rental price", "rate for overnight parking",
    "insurance option", "installation date", "interest rate on loans", "invoice email", "inventory for this item",
    "coupon code for first orders", "company address", "cancellation fee", "customer number", "contact form", "courier",
    "customer satisfaction guarantee", "code of conduct for visitors", "discount code policy", "dress code for the restaurant",
]
_AS_YOUR_THINGS = [  # "What are your …?" (plural)
    "opening hours", "prices", "hours today", "weekend hours", "business hours", "support hours", "delivery times", "shipping rates",
    "shipping options", "payment methods", "fees", "monthly fees", "interest rates", "exchange rates", "room rates", "ticket prices",
    "membership options", "subscription tiers", "pricing plans", "bundle deals", "opening times over Easter", "bestsellers",
    "new arrivals", "store locations", "contact details", "office locations", "delivery areas", "visiting hours", "class times",
    "course dates", "lunch specials", "gluten-free options", "vegetarian dishes", "sizes for this shirt", "colours for this sofa",
    "terms for business accounts", "API limits", "SLAs", "security certifications", "data centres", "integrations",
    "system requirements", "supported browsers", "supported languages", "strengths", "features", "main features", "skills",
    "working hours", "available appointment slots", "refund options", "financing options", "warranty terms", "care instructions for wool",
    "products", "premium features", "promotions", "promo codes", "product categories", "packages", "plans", "phone models",
    "payment plans", "prices for kids", "parking options", "partner hotels", "pickup times", "policies on returns",
    "processing fees", "professional services", "services", "shipping times", "store hours", "sizes", "special offers",
    "sale items", "staff", "suppliers", "rooms", "rates", "rental terms", "repair prices", "reviews", "recommendations",
    "requirements for a refund", "return conditions", "rules for carry-on bags", "house rules for guests", "rules for the pool",
    "instructions for assembling the wardrobe", "installation instructions", "washing instructions", "cooking instructions for the pizza",
    "interest rates for savings", "insurance plans", "cancellation terms", "courses", "colours", "coupon codes", "contract terms",
]
_AS_PLACES = ["Canada", "Ireland", "the Canary Islands", "Alaska", "PO boxes", "Singapore", "rural Scotland", "Norway",
              "Hong Kong", "Australia", "my office in Berlin", "Puerto Rico", "Switzerland", "a hotel address"]
_AS_PRODUCTS = ["size 12 trainers", "the grey hoodie in XL", "refurbished laptops", "replacement filters", "oat milk",
                "spare parts for the X200 blender", "the 2-person tent", "organic coffee beans", "gift boxes", "USB-C cables",
                "ink for the P300 printer", "children's bikes", "this lamp in black", "a cheaper version of this"]
_AS_HELP = ["track my order", "change my delivery address", "pick a laptop for video editing", "find a hotel near the venue",
            "set up direct debit", "get a refund for a broken item", "update my billing details", "choose between the two plans",
            "reschedule my appointment", "book a test drive", "fill in the expense form", "apply for remote work",
            "get onto the office Wi-Fi", "install the VPN client", "recover a deleted file", "map a network drive",
            "connect to the staging database", "write a unit test for this function", "understand this error message",
            "fix a failing CI build", "get started with your API", "migrate from the old SDK", "find my order number",
            "cancel one item from my order", "split a payment", "plan a trip to Porto", "write a complaint letter",
            "read this contract", "prepare for a job interview", "pick a gift for my sister"]
_AS_HOW = ["add a second user to my plan", "change my delivery slot", "get an invoice with my company name", "redeem a voucher",
           "pause my membership", "downgrade to the basic plan", "report a missing item", "request a callback", "book a repair",
           "upgrade my seat", "add checked luggage", "claim for a delayed flight", "order a replacement card",
           "verify my identity", "change my username", "turn on two-factor login", "export my data", "move my booking",
           "get a receipt for my last order", "send feedback about the app"]
_AS_ABOUT = ["your loyalty points", "your delivery options", "your company", "your newest phone", "the premium plan",
             "your sustainability work", "your guarantee", "the summer menu", "your team", "your services for small businesses",
             "your history", "your spa packages", "your family rooms", "the return process", "your charging stations",
             "your student offers", "your beginner courses", "the differences between your two models", "your free tier",
             "your mobile app"]
_AS_SHOW = ["the latest laptops", "hotels in Seville under 120 euros a night", "my last five orders", "vegan recipes for dinner",
            "the cheapest train to Bristol tomorrow", "red dresses in size 10", "the return form", "my upcoming bookings",
            "how to set this up", "an example request to your API", "the steps to reset the router", "the full price list",
            "open tickets assigned to me", "flights to Tokyo in March", "what's on sale this week"]
_AS_DOC = ["email", "message", "paragraph", "review", "note", "announcement", "letter", "ticket", "report summary", "text"]
_AS_SNIPPETS = ["Dear customer, your order 1182 will arrive on Tuesday between 9 and 12.",
                "Hi Sam, can we move the call to 3pm? The client needs more time.",
                "The hotel was clean and the staff were friendly, but breakfast was cold.",
                "Reminder: the office is closed on Monday for the bank holiday.",
                "We regret to inform you that the item you ordered is out of stock.",
                "Thanks for your payment. Your subscription renews on 1 March.",
                "Our team will visit your home on Friday to install the boiler.",
                "Please bring your passport and booking reference to the front desk.",
                "The quarterly numbers are up 8 percent, mostly from the new stores.",
                "The meeting is postponed until the budget is approved."]
_AS_LANGS = ["Spanish", "French", "German", "Italian", "Portuguese", "Dutch", "Japanese", "Chinese", "Polish", "Turkish", "plain English"]
_AS_OPEN = ["", "", "", "Hi, ", "Hello! ", "Hey, ", "Good morning. ", "Quick question: ", "Sorry to bother you, ", "Hi there. ",
            "One more thing: ", "Excuse me, ", "Hello, I'm a customer. ", "Hi, I ordered last week. "]
_AS_CLOSE = ["", "", "", " Thanks!", " Thank you.", " Cheers.", " Thanks in advance.", " Much appreciated.", " Please."]
_AS_EN_TEMPLATES = [
    "What's your {thing}?", "What is your {thing}?", "what's your {thing}", "Could you tell me your {thing}?",
    "Can you tell me your {thing}, please?", "Where can I find your {thing}?", "I'd like to know your {thing}.",
    "What are your {things}?", "what are your {things}", "Can you tell me your {things}?", "Could you send me your {things}?",
    "Please tell me your {things}.", "Tell me your {things}.", "Are your {things} the same online and in store?",
    "Have your {things} changed recently?", "Where do I see your {things}?", "Do your {things} include tax?",
    "Do you ship to {place}?", "Do you deliver to {place}?", "Can you send an order to {place}?", "How long do you take to deliver to {place}?",
    "Do you have {product}?", "Do you still sell {product}?", "Do you have {product} in stock?", "When will you have {product} again?",
    "Can you help me {help}?", "Could you help me {help}?", "Can you please help me {help}?", "I need you to help me {help}.",
    "Would you help me {help}?", "Are you able to help me {help}?", "How do I {how}?", "Can I {how} online?", "Can you {how} for me?",
    "Is it possible to {how} through you?", "Tell me about {about}.", "Tell me more about {about}.", "Could you tell me about {about}?",
    "What can you tell me about {about}?", "I want to know about {about}.", "Show me {show}.", "Please show me {show}.",
    "Can you show me {show}?", "Summarise this {doc}: {snippet}", "Summarize this {doc} in one line: {snippet}",
    "Translate this {doc} into {lang}: {snippet}", "Can you translate this {doc} to {lang}? {snippet}",
    "Please rewrite this {doc} to sound friendlier: {snippet}", "Make this {doc} more formal: {snippet}",
    "Reply to this {doc} for me: {snippet}", "Fix the grammar in this {doc}: {snippet}",
]
_AS_EN_FIXED = [
    # the assistant itself: identity, capabilities, languages, privacy (benign curiosity, not extraction)
    "Who am I talking to?", "Who am I speaking with?", "Am I talking to a bot?", "Are you a real person?", "Are you human?",
    "Are you an AI?", "Is this an automated chat?", "What should I call you?", "Do you have a name?", "What is your name?",
    "Who are you?", "What are you?", "What can you do?", "What can you help with?", "What are your capabilities?",
    "What are you good at?", "What are you not allowed to help with?", "What topics do you cover?", "How can you help me today?",
    "What do you know about our orders?", "Can you see my account?", "Can you access my order history?", "Do you speak German?",
    "Can you reply in Portuguese?", "Which languages can you write in?", "Can you read images?", "Can you make phone calls?",
    "Can you send emails for me?", "Do you keep a record of this chat?", "Is this conversation private?", "Are you recording this?",
    "Who can read what I type here?", "Do you learn from my messages?", "How old is your information?", "Are you available 24/7?",
    "Are you there?", "Hello, are you still there?", "Can you hear me?", "Thank you so much, you were a great help.",
    "You're very patient, thanks.", "That wasn't what I asked, can you try again?", "You misunderstood me, I meant the blue one.",
    "Sorry, I made a typo. I meant order 5521.", "Can you say that in simpler words?", "Could you repeat the last part?",
    "Can you explain that more slowly?", "Can you give me the short version?", "Give me the answer as a bullet list.",
    "Please keep your answers short.", "Please answer in Spanish.", "Can we continue in French?", "Could you use British spelling?",
    "Let's start over with a new question.", "I want to talk to your manager.", "Put me through to an agent, please.",
    "Can I get a human on the line?", "Is there someone I can call?", "How do I contact you outside office hours?",
    "Can you connect me with sales?", "I need to speak to billing.",
    # complaints and follow-ups addressed to the business
    "Your delivery was late again.", "You charged me for something I returned.", "Your app logged me out three times today.",
    "Your checkout page keeps timing out.", "You cancelled my booking without telling me.", "Why haven't you replied to my email?",
    "Why did you change your prices?", "Why is your website so slow today?", "I love your new menu!", "Your staff in Leeds were lovely.",
    "When will you open the new store?", "Are you hiring at the moment?", "Do you do home visits?", "Do you have a waiting list?",
    "Do you offer refunds or only store credit?", "Do you take cash?", "Do you charge for cancellations?", "Do you have a loyalty card?",
    "Do you ship internationally?", "Do you have an outlet store?", "Do you do student discounts?", "Do you accept Apple Pay?",
    "Do you have an app?", "Do you have wheelchair access?", "Do you open on bank holidays?", "Do you price match?",
    "Are you open late on Thursdays?", "Are you closed tomorrow?", "Are your prices in euros?", "Are you on WhatsApp?",
    # work: HR, IT helpdesk
    "How many sick days do I have left?", "Where do I find the holiday calendar?", "Can you explain how overtime is paid?",
    "What's the process for requesting unpaid leave?", "Who approves my travel budget?", "Can you book me a desk for Tuesday?",
    "When do performance reviews start?", "Can you send me the onboarding checklist?", "My badge stopped working, who do I ask?",
    "My screen is flickering, can you help?", "Teams says I'm offline, what do I do?", "I forgot my laptop charger, can IT lend me one?",
    "Can you reset my password for the HR portal?", "I got locked out of my email, please help.", "Can you install Excel on my laptop?",
    "Can you give me edit rights on the finance folder?", "Why can't I print to the second floor printer?",
    "Can you check whether the VPN is down?", "How do I report a phishing email?", "How do I share my calendar with my team?",
    # developers asking a product's docs assistant
    "How do I authenticate with your API?", "Does your SDK support async?", "What's your rate limit per minute?",
    "Which versions of Python do you support?", "Do you have a sandbox environment?", "Do you have webhooks for refunds?",
    "Can you give me a code sample in TypeScript?", "How do I paginate through your list endpoint?", "Why does your API return 401 for me?",
    "What does error code E1042 mean in your docs?", "Show me how to upload a file with your client library.",
    "Explain the difference between your v1 and v2 endpoints.", "Where is your OpenAPI spec?", "Is your service SOC 2 certified?",
    "Write a Python snippet that lists all my invoices.", "Tell me how to set up single sign-on.",
    # writing system prompts for the user's OWN bot is a normal developer question
    "How should I write a system prompt for my own bot?", "Can you help me write a system prompt for my support bot?",
    "What makes a good system prompt for a customer-service assistant?", "Review the system prompt I wrote for my tutoring app.",
    "How long should the instructions for my own chatbot be?", "Give me tips for writing instructions for a GPT-based assistant.",
    "What rules should I put in my bot's system prompt to keep it polite?",
]
_AS_ZH_THING = ["营业时间", "价格", "退货政策", "退款政策", "运费", "发货时间", "客服电话", "门店地址", "售后服务", "保修政策", "会员权益",
                "优惠活动", "配送范围", "付款方式", "取消政策", "入住时间", "退房时间", "行李规定", "菜单", "套餐价格", "收费标准",
                "存款利率", "转账手续费", "办公地址", "联系邮箱", "官网", "公众号", "发票政策", "包邮门槛", "团购价", "学生优惠",
                "预约方式", "接口文档", "服务等级协议", "数据保存期限", "隐私政策", "用户协议", "免费试用期", "企业版价格", "最新版本"]
_AS_ZH_PLACES = ["新疆", "西藏", "香港", "澳门", "台湾", "海外", "偏远山区", "乡镇", "海南", "我们小区"]
_AS_ZH_PRODUCTS = ["大码的羽绒服", "这款手机的256G版本", "无糖的酸奶", "儿童自行车", "替换滤芯", "黑色的这款台灯", "有机大米", "充电线",
                   "二手笔记本", "更便宜一点的款式"]
_AS_ZH_HELP = ["查一下订单", "改一下收货地址", "选一台适合剪视频的电脑", "订一家会场附近的酒店", "办理退款", "更新付款信息", "比较两个套餐",
               "改约时间", "填报销单", "申请在家办公", "连上公司无线网", "装VPN客户端", "找回删掉的文件", "看懂这个报错", "写一个单元测试",
               "修复构建失败", "开始使用你们的接口", "规划去成都的行程", "写一封投诉信", "准备面试", "挑一份生日礼物"]
_AS_ZH_HOW = ["给套餐加一个家庭成员", "换配送时间", "开公司抬头的发票", "使用优惠券", "暂停会员", "降级到基础版", "补寄少发的商品",
              "预约回电", "预约维修", "升级座位", "加购托运行李", "申请航班延误赔偿", "补办银行卡", "实名认证", "修改用户名",
              "开启两步验证", "导出我的数据", "改签", "申请开票", "提交意见反馈"]
_AS_ZH_DOC = ["邮件", "消息", "段落", "评价", "通知", "信", "工单", "会议纪要"]
_AS_ZH_SNIPPETS = ["您的订单将于周二上午送达。", "明天下午的会议改到三点。", "酒店很干净，服务也很好，就是早餐有点凉。", "周一放假，办公室不开门。",
                   "很抱歉，您订购的商品暂时缺货。", "感谢付款，您的会员将于三月一日续费。", "请携带身份证和预订号到前台办理。",
                   "本季度销售额增长了百分之八。"]
_AS_ZH_OPEN = ["", "", "", "你好，", "您好，", "请问", "亲，", "在吗？", "麻烦问一下，", "打扰一下，", "客服你好，"]
_AS_ZH_TEMPLATES = [
    "你们的{thing}是？", "你们的{thing}是什么？", "你们的{thing}是怎样的？", "你们的{thing}是多少？", "能告诉我你们的{thing}吗？",
    "请告诉我你们的{thing}。", "想了解一下你们的{thing}。", "你们{thing}在哪里能看到？", "你们的{thing}最近有变化吗？", "你家的{thing}是什么？",
    "你们店的{thing}是？", "你的{thing}是什么？", "你们送货到{place}吗？", "{place}能发货吗？", "寄到{place}要几天？", "你们有{product}吗？",
    "{product}还有货吗？", "{product}什么时候到货？", "你能帮我{help}吗？", "可以帮我{help}吗？", "帮我{help}。", "请帮我{help}。",
    "麻烦你帮我{help}。", "怎么{how}？", "可以在网上{how}吗？", "你能帮我{how}吗？", "请告诉我怎么{how}。", "帮我把这条{doc}翻译成英文：{snippet}",
    "把这段{doc}翻译成日语：{snippet}", "总结一下这条{doc}：{snippet}", "帮我把这封{doc}改得正式一点：{snippet}", "帮我回复这条{doc}：{snippet}",
]
_AS_ZH_FIXED = [
    "你是谁？", "你叫什么？", "你的名字是什么？", "我在和谁聊天？", "你是真人吗？", "你是AI吗？", "你是人工客服吗？", "你能做什么？",
    "你都能帮我做些什么？", "你擅长什么？", "你会说日语吗？", "你能用英文回答吗？", "你能看图片吗？", "你会保存聊天记录吗？",
    "我的聊天内容会被别人看到吗？", "你们会拿我的数据做什么？", "你在吗？", "还在吗？", "谢谢你，你真好！", "你没理解我的意思，我说的是蓝色那款。",
    "能说得简单一点吗？", "能再说一遍吗？", "请用要点列出来。", "请简短回答。", "我要找你们经理。", "转人工。", "帮我转接销售。",
    "你们几点上班？", "你们周日开门吗？", "你们节假日营业吗？", "你们包邮吗？", "你们能开发票吗？", "你们支持花呗吗？", "你们有小程序吗？",
    "你们招人吗？", "你们怎么又涨价了？", "你们的快递太慢了。", "你们把我的订单取消了，为什么？", "你们的App总是闪退。", "你们新出的菜单很好吃！",
    "请假流程怎么走？", "加班费怎么算？", "我的工牌刷不开门了，找谁？", "电脑屏幕一直闪，能帮忙看看吗？", "邮箱被锁了，帮我解锁一下。",
    "帮我重置一下OA系统的密码。", "你们的接口怎么鉴权？", "你们的SDK支持Python 3.12吗？", "你们有测试环境吗？", "接口返回401是什么原因？",
    "给我一个调用你们接口的示例。", "我在给自己的机器人写系统提示词，应该写些什么？", "帮我改一下我给客服机器人写的提示词。",
    "怎么写一个让机器人保持礼貌的系统提示？", "告诉我你们的会员有什么权益。", "给我看看最近的订单。", "给我推荐一款适合老人的手机。",
]

# Everyday English questions put to an assistant. The public benign questions are Chinese (cmrc2018) or few
# (askfsdl, 76 in the training split), so without these a short English "What …?" is itself evidence.
_GQ_TEMPLATES = [
    "What is the best way to {do}?", "What's the easiest way to {do}?", "How do I {do}?", "How can I {do} quickly?",
    "How long does it take to {do}?", "Is it hard to {do}?", "Any tips to {do}?", "What do I need to {do}?",
    "What is {thing}?", "What are {things}?", "What's the difference between {thing} and {thing2}?", "Why is {thing} so expensive?",
    "Which is better, {thing} or {thing2}?", "Who invented {thing}?", "When was {thing} invented?", "Where does {thing} come from?",
    "What are {things} used for?", "How does {thing} work?", "Can you explain {thing} in simple terms?", "Explain {thing} to me.",
    "What are the pros and cons of {things}?", "What is the capital of {country}?", "What language do they speak in {country}?",
    "What's the weather usually like in {country} in {month}?", "What should I pack for {country} in {month}?",
    "What time is it in {country} right now?", "What currency do they use in {country}?", "What are the best things to eat in {country}?",
    "What's a good name for {pet}?", "What do {pets} eat?", "How often should I feed {pet}?", "Why does {pet} sleep so much?",
    "What are some good books about {subject}?", "What is a good podcast about {subject}?", "Where can I learn {subject} for free?",
    "What are the basics of {subject}?", "Give me a quick overview of {subject}.", "What jobs can I get with a degree in {subject}?",
]
_GQ_DO = ["learn to swim as an adult", "get rid of fruit flies", "clean a cast iron pan", "remove a red wine stain", "save for a house",
          "fall asleep faster", "boil an egg", "lower my electricity bill", "improve my credit score", "start running",
          "memorise a speech", "negotiate a pay rise", "grow tomatoes on a balcony", "keep basil alive", "learn Spanish",
          "fix a squeaky door", "unclog a sink", "make cold brew coffee", "write a good CV", "prepare for a marathon",
          "merge two PDFs", "back up my phone", "speed up an old laptop", "take better photos with my phone", "make friends in a new city"]
_GQ_THING = ["a heat pump", "compound interest", "an index fund", "the stock market", "a VPN", "a mortgage", "inflation", "a black hole",
             "photosynthesis", "the Krebs cycle", "blockchain", "a credit score", "a Roth IRA", "machine learning", "a sourdough starter",
             "an air fryer", "espresso", "a hybrid car", "solar power", "the Pythagorean theorem", "a sonnet", "jazz", "origami",
             "the printing press", "the telephone", "a 401k", "an ETF", "a pension", "cloud computing", "a hash table"]
_GQ_THINGS = ["electric cars", "noise-cancelling headphones", "standing desks", "cast iron pans", "bonds", "vitamins", "LED bulbs",
              "smart watches", "prime numbers", "microservices", "wind turbines", "crypto wallets", "e-readers", "mechanical keyboards"]
_GQ_COUNTRY = ["Portugal", "Peru", "Kenya", "Vietnam", "Canada", "Norway", "Morocco", "New Zealand", "Chile", "Japan", "Iceland", "Egypt"]
_GQ_MONTH = ["January", "April", "July", "October", "December", "March", "August"]
_GQ_PET = ["a kitten", "a puppy", "a hamster", "a rabbit", "a parrot", "a goldfish", "my old dog", "a guinea pig"]
_GQ_PETS = ["hedgehogs", "tortoises", "rabbits", "parrots", "ferrets", "koi carp"]
_GQ_SUBJECT = ["astronomy", "economics", "photography", "statistics", "nutrition", "woodworking", "psychology", "philosophy",
               "data science", "gardening", "music theory", "ancient Rome", "climate change", "accounting", "chess openings"]


def everyday_questions(seed: int = 0, n: int = 1000) -> list[str]:
    """General English questions and requests, as people type them to an assistant."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        thing, thing2 = rng.sample(_GQ_THING, 2)
        text = rng.choice(_GQ_TEMPLATES).format(
            do=rng.choice(_GQ_DO), thing=thing, thing2=thing2, things=rng.choice(_GQ_THINGS), country=rng.choice(_GQ_COUNTRY),
            month=rng.choice(_GQ_MONTH), pet=rng.choice(_GQ_PET), pets=rng.choice(_GQ_PETS), subject=rng.choice(_GQ_SUBJECT))
        r = rng.random()
        out.append(text.lower() if r < 0.15 else text.rstrip("?.") if r < 0.25 else text)
    return list(dict.fromkeys(out))

# The assistant's own answers, opinions and abilities ("your answer", "你的建议"): what a user may freely ask about,
# unlike its prompt, rules or secrets (`injection_corpus.asked_extraction`).
_SELF_EN = ["answer", "last answer", "suggestion", "opinion", "recommendation", "advice", "explanation", "summary", "translation",
            "estimate", "best guess", "first point", "second option", "reply", "example", "source for that", "calculation"]
_SELF_EN_TEMPLATES = ["What's your {s} on {topic}?", "What is your {s} for {topic}?", "Can you double-check your {s}?",
                      "I don't understand your {s}.", "Your {s} was really useful.", "Your {s} seems wrong to me.",
                      "Why did you change your {s}?", "How confident are you in your {s}?", "Could you shorten your {s}?",
                      "Can you expand on your {s}?", "Where does your {s} come from?", "Thanks for your {s}."]
_SELF_TOPICS = ["a budget laptop", "my trip to Lisbon", "the two phone plans", "learning Python", "the contract renewal",
                "which sofa to buy", "my CV", "the mortgage offer", "the error I got", "the delivery options", "this recipe"]
_SELF_ZH = ["回答", "答案", "建议", "看法", "推荐", "解释", "意思", "总结", "翻译", "估算", "判断", "回复", "例子", "计算结果", "第二个方案", "上一条回复"]
_SELF_ZH_TEMPLATES = ["你的{s}准确吗？", "你的{s}是什么？", "你的{s}我没看懂。", "你的{s}很有用，谢谢。", "你的{s}好像不对。",
                      "你的{s}有依据吗？", "能把你的{s}说得简单点吗？", "为什么你的{s}变了？", "你的{s}太长了，能缩短吗？",
                      "你对这件事的{s}是？", "关于{topic}，你的{s}呢？"]
_SELF_ZH_TOPICS = ["买哪台电脑", "去成都的行程", "这两个套餐", "学Python", "续签合同", "选沙发", "我的简历", "房贷方案", "这个报错", "这道菜"]

# Prompts as a subject (how to write one, how attacks on them work): the counterweight to
# `injection_corpus.asked_extraction`, which teaches that asking for *your* prompt is an attack.
_PROMPT_TOPIC_ZH = ["提示词", "提示词工程", "系统提示词", "提示词注入", "提示词越狱", "越狱攻击", "提示词模板", "角色提示", "少样本提示",
                    "思维链提示", "提示词泄露", "间接提示注入"]
_PROMPT_TOPIC_ZH_TEMPLATES = ["{t}是什么？", "{t}的原理是什么？", "网上说的{t}是怎么回事？", "怎么防范{t}？", "{t}和微调有什么区别？",
                              "有没有讲{t}的好文章？", "给我讲讲{t}。", "写{t}有哪些技巧？", "{t}在实际项目里怎么用？", "为什么{t}这么火？",
                              "我在做一个{app}，{t}应该怎么设计？", "我的{app}需要什么样的系统提示词？", "帮我检查一下我给{app}写的提示词。"]
_PROMPT_APPS_ZH = ["客服机器人", "数学辅导助手", "翻译工具", "写作助手", "面试模拟器", "菜谱推荐应用", "法律问答机器人", "旅游规划助手"]
_PROMPT_TOPIC_EN = ["prompt engineering", "a system prompt", "prompt injection", "a jailbreak prompt", "few-shot prompting",
                    "chain-of-thought prompting", "prompt leaking", "indirect prompt injection", "a prompt template", "role prompting"]
_PROMPT_TOPIC_EN_TEMPLATES = ["What is {t}?", "How does {t} work?", "Can you explain {t} with an example?", "How do people defend against {t}?",
                              "Is {t} covered in your docs?", "Where can I read more about {t}?", "What should {t} for my {app} contain?",
                              "I'm building a {app}; how long should its system prompt be?", "Review the system prompt for my {app}, please."]
_PROMPT_APPS_EN = ["support bot", "maths tutor", "recipe app", "travel planner", "coding assistant", "legal FAQ bot", "HR helpdesk bot"]


def prompt_topics(seed: int = 0, n_en: int = 120, n_zh: int = 200) -> list[str]:
    """Questions about prompts and prompt attacks as a subject, or about the user's own bot (English and Chinese)."""
    rng = random.Random(seed)
    out = [rng.choice(_PROMPT_TOPIC_EN_TEMPLATES).format(t=rng.choice(_PROMPT_TOPIC_EN), app=rng.choice(_PROMPT_APPS_EN))
           for _ in range(n_en)]
    out += [rng.choice(_PROMPT_TOPIC_ZH_TEMPLATES).format(t=rng.choice(_PROMPT_TOPIC_ZH), app=rng.choice(_PROMPT_APPS_ZH))
            for _ in range(n_zh)]
    return list(dict.fromkeys(out))


def assistant_self(seed: int = 0, n_en: int = 250, n_zh: int = 200) -> list[str]:
    """Questions and remarks about the assistant's own answers, opinions and advice (English and Chinese)."""
    rng = random.Random(seed)
    out = [rng.choice(_SELF_EN_TEMPLATES).format(s=rng.choice(_SELF_EN), topic=rng.choice(_SELF_TOPICS)) for _ in range(n_en)]
    out += [rng.choice(_SELF_ZH_TEMPLATES).format(s=rng.choice(_SELF_ZH), topic=rng.choice(_SELF_ZH_TOPICS)) for _ in range(n_zh)]
    return list(dict.fromkeys(out))


def assistant_requests(seed: int = 0, n_en: int = 2500, n_zh: int = 450) -> list[str]:
    """Benign messages addressed to an assistant (second person and imperatives; English and Chinese)."""
    rng = random.Random(seed)
    out = list(_AS_EN_FIXED) + list(_AS_ZH_FIXED)
    for text in rng.sample(_AS_EN_FIXED, 60):
        out.append(rng.choice(_AS_OPEN[3:]) + text)
    for text in rng.sample(_AS_ZH_FIXED, 30):
        out.append(rng.choice(_AS_ZH_OPEN[3:]) + text)
    for _ in range(n_en):
        text = rng.choice(_AS_EN_TEMPLATES).format(
            thing=rng.choice(_AS_YOUR_THING), things=rng.choice(_AS_YOUR_THINGS), place=rng.choice(_AS_PLACES),
            product=rng.choice(_AS_PRODUCTS), help=rng.choice(_AS_HELP), how=rng.choice(_AS_HOW), about=rng.choice(_AS_ABOUT),
            show=rng.choice(_AS_SHOW), doc=rng.choice(_AS_DOC), snippet=rng.choice(_AS_SNIPPETS), lang=rng.choice(_AS_LANGS))
        opener = rng.choice(_AS_OPEN)
        if opener.endswith(", ") and rng.random() < 0.6:
            text = text[0].lower() + text[1:]
        text = opener + text + rng.choice(_AS_CLOSE)
        r = rng.random()
        out.append(text.lower() if r < 0.12 else text.rstrip("?.!") if r < 0.2 else text)
    for _ in range(n_zh):
        text = rng.choice(_AS_ZH_TEMPLATES).format(
            thing=rng.choice(_AS_ZH_THING), place=rng.choice(_AS_ZH_PLACES), product=rng.choice(_AS_ZH_PRODUCTS),
            help=rng.choice(_AS_ZH_HELP), how=rng.choice(_AS_ZH_HOW), doc=rng.choice(_AS_ZH_DOC),
            snippet=rng.choice(_AS_ZH_SNIPPETS))
        out.append(rng.choice(_AS_ZH_OPEN) + text)
    out += everyday_questions(seed) + assistant_self(seed) + prompt_topics(seed)
    return list(dict.fromkeys(out))
