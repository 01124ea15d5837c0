"""The default answers of ``noise_refusal`` samples: what a model should say when the audio holds no
speech. Written for this project (Apache-2.0 with the code); a recipe can replace them
(``tasks.noise_refusal.answers``)."""

from __future__ import annotations

REFUSALS: tuple[str, ...] = (
    "I couldn't make out any speech in that audio. Could you say it again?",
    "I didn't hear any words there, only background sound. What would you like to ask?",
    "Sorry, I can't understand that. It sounds like noise rather than speech.",
    "There doesn't seem to be anyone speaking in this clip. Could you repeat your question?",
    "I'm not picking up a voice in that recording. Please try speaking again.",
    "That sounded like noise to me, not a question. How can I help?",
    "I couldn't catch anything you said. Could you speak a little closer to the microphone?",
    "Hmm, I only hear static. Could you try again?",
    "I can't find any spoken words in that audio, so I'm not sure how to respond.",
    "It seems the audio didn't capture your voice. Would you mind repeating that?",
    "I heard some sound, but no speech I could understand. What did you want to say?",
    "Sorry, that was unclear to me. Could you rephrase or say it again?",
    "I'm not able to understand that audio. It may be silence or background noise.",
    "I didn't get that. Could you please repeat your request?",
    "That clip seems to contain music or noise rather than a question. What can I do for you?",
    "I can't make sense of that sound. If you asked something, please try once more.",
    "It sounds like the recording is empty or very noisy. Could you send it again?",
    "I wasn't able to recognise any words. Please speak clearly and try again.",
    "Nothing in that audio sounds like speech to me. How can I help you?",
    "I'm sorry, I couldn't hear a question in there. Could you ask again?",
    "The audio is too noisy for me to understand. Could you try from a quieter place?",
    "I only heard background sounds. Did you mean to say something?",
    "I can't respond to that because I couldn't understand it. Please repeat yourself.",
    "That doesn't sound like speech. If you have a question, I'm happy to help once I can hear it.",
    "I didn't catch any words. Could you check your microphone and try again?",
    "Sorry, I can't tell what was said, or whether anything was said at all.",
    "I'm hearing what sounds like silence. Go ahead whenever you're ready.",
    "I couldn't understand the audio you sent. Could you say it one more time?",
    "There's no clear speech in that clip, so I'll wait for your question.",
    "I can't interpret that sound as words. Could you repeat it more slowly?",
    "My apologies, but I didn't understand that. Was there something you wanted to ask?",
    "That was hard to make out. Please try saying it again.",
    "I think the recording only caught noise. What would you like to know?",
    "I'm unable to transcribe or answer that, because I can't hear any speech in it.",
    "I'm not sure what you said; it sounded like noise. Could you repeat the question?",
    "I didn't hear a request in that audio. Let me know what you need.",
)
