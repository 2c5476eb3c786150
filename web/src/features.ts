// What people are told when a part of the service is switched off (a kill switch, issue 16). The
// server names features by the keys below (src/modules/features/features.ts); a name this list
// does not know still gets a plain general message.

const OFF_MESSAGES: Record<string, string> = {
  account: 'Signing in is switched off for the moment. Your account and records are safe; please try again later.',
  registration: 'Creating an account is switched off for the moment. Please try again later.',
  profile: 'Your profile is switched off for the moment. Your details are safe; please try again later.',
  booking:
    'Booking is switched off for the moment. Please try again later. If you need to see a GP today, call the practice.',
  rescheduling:
    'Moving an appointment is switched off for the moment. Your appointment is still booked; please try again later.',
  appointments: 'Appointments are switched off for the moment. Your bookings are safe; please try again later.',
  notifications: 'Notifications are switched off for the moment. Please try again later.',
  consultation_join:
    'Joining consultations is switched off for the moment. Please try again later, or call the practice.',
  mode_switch: 'Switching between audio and video is switched off for the moment. The call carries on as it is.',
  recording: 'Recording is switched off for the moment. The consultation can carry on without being recorded.',
  replay_list: 'Consultation replays are switched off for the moment. Your recordings are safe; please try again later.',
  replay_playback: 'Playing replays is switched off for the moment. Your recordings are safe; please try again later.',
  notes: 'Consultation notes are switched off for the moment. They are safe; please try again later.',
};

const GENERAL_OFF_MESSAGE = 'This part of the service is switched off for the moment. Nothing was changed. Please try again later.';

/** What a person is told where `feature` is switched off, in plain words. */
export function featureOffMessage(feature: string | undefined): string {
  return (feature && Object.hasOwn(OFF_MESSAGES, feature) ? OFF_MESSAGES[feature] : undefined) ?? GENERAL_OFF_MESSAGE;
}

/** A feature's name in words, for staff: "replay playback". */
export function featureLabel(feature: string): string {
  return feature.replaceAll('_', ' ');
}

/** The same, starting with a capital: "Replay playback". */
export function featureTitle(feature: string): string {
  const label = featureLabel(feature);
  return label.charAt(0).toUpperCase() + label.slice(1);
}
